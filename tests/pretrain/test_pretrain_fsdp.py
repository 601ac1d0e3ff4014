"""FSDP2 (train.strategy=fsdp) gives the same losses as DDP, resumes, and its checkpoint loads
into create_model. Two gloo ranks forked from the test process (no launcher start-up cost)."""
import multiprocessing as mp
import os
import socket

import pytest
import torch

from egohod.data.synthetic import SyntheticConfig, make_corpus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, port, corpus, out, strategy, max_steps, resume, q):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        from omegaconf import OmegaConf

        from pretrain.config import PretrainConfig, validate
        from pretrain.distributed import cleanup, init_distributed
        from pretrain.train import run

        c = PretrainConfig()
        c.data.csv, c.data.video_root = str(corpus / "metadata.csv"), str(corpus / "videos")
        c.data.resize_short, c.data.batch_size, c.data.num_workers, c.data.pin_memory = 40, 2, 0, False
        c.data.slow_frames = 8
        c.model.name, c.model.grad_checkpointing = "egovideo_tiny", True
        c.optim.lr, c.optim.accum_steps = 1e-3, 2
        c.train.out, c.train.device, c.train.strategy = str(out), "cpu", strategy
        c.train.max_steps, c.train.save_every_steps, c.train.log_every_steps, c.train.resume = max_steps, 2, 1, resume
        c.log.wandb = c.log.progress = False
        validate(c)
        info = init_distributed("cpu")
        run(c, OmegaConf.to_container(OmegaConf.structured(c)), info)
        cleanup()
        q.put((rank, "ok"))
    except BaseException as e:  # report instead of hanging the test
        q.put((rank, f"{type(e).__name__}: {e}"))


def _launch(corpus, out, strategy, max_steps, resume=False):
    ctx = mp.get_context("fork")
    q, port = ctx.Queue(), _free_port()
    ps = [ctx.Process(target=_rank, args=(r, port, corpus, out, strategy, max_steps, resume, q)) for r in range(2)]
    for p in ps:
        p.start()
    res = dict(q.get(timeout=300) for _ in ps)
    for p in ps:
        p.join(timeout=60)
    assert res == {0: "ok", 1: "ok"}, res


def test_fsdp_matches_ddp_and_resumes(tmp_path):
    from pretrain.runlog import read_metrics

    corpus = tmp_path / "c"
    make_corpus(SyntheticConfig(out=str(corpus), videos=2, seconds=8, fps=4, height=48, width=64), progress=False)
    _launch(corpus, tmp_path / "ddp", "ddp", 4)
    _launch(corpus, tmp_path / "fsdp", "fsdp", 2)
    _launch(corpus, tmp_path / "fsdp", "fsdp", 4, resume=True)
    ddp = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    fsdp = read_metrics(tmp_path / "fsdp" / "metrics.jsonl")
    assert sorted(ddp) == sorted(fsdp) == [1, 2, 3, 4]
    for s in ddp:
        assert fsdp[s]["loss"] == pytest.approx(ddp[s]["loss"], abs=1e-5), s
    import egohod

    a = egohod.create_model("egovideo_tiny", checkpoint=tmp_path / "fsdp" / "checkpoints" / "last" / "model.pt")
    b = egohod.create_model("egovideo_tiny", checkpoint=tmp_path / "ddp" / "checkpoints" / "last" / "model.pt")
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(pa, pb, atol=1e-5), n
