"""Single-process runs of the training loop inside the test process (no launcher): the run
stops with a clear message when too many samples are bad."""
import pytest
import torch

from egohod.data.datasets import TooManyBadSamples
from egohod.data.synthetic import SyntheticConfig, make_corpus


def _cfg(corpus, out, **train):
    from pretrain.config import PretrainConfig, validate

    c = PretrainConfig()
    c.data.csv, c.data.video_root = str(corpus / "metadata.csv"), str(corpus / "videos")
    c.data.resize_short, c.data.batch_size, c.data.num_workers, c.data.pin_memory = 40, 4, 0, False
    c.data.slow_frames = 8
    c.data.max_bad_fraction, c.data.bad_min_attempts = 0.2, 8
    c.model.name = "egovideo_tiny"
    c.train.out, c.train.device, c.train.max_steps, c.train.save_every_steps = str(out), "cpu", 6, 100
    c.train.log_every_steps = 1
    c.log.wandb = c.log.progress = False
    for k, v in train.items():
        setattr(c.train, k, v)
    validate(c)
    return c


def test_too_many_bad_samples_stop_the_run_naming_the_files(tmp_path):
    from omegaconf import OmegaConf

    from pretrain.distributed import DistInfo
    from pretrain.train import run

    corpus = tmp_path / "c"
    make_corpus(SyntheticConfig(out=str(corpus), videos=3, seconds=6, fps=4, height=48, width=64), progress=False)
    for vid in ("synth00001", "synth00002"):
        (corpus / "videos" / vid / "0000.mp4").write_bytes(b"broken" * 50)
    cfg = _cfg(corpus, tmp_path / "run")
    with pytest.raises(TooManyBadSamples, match=r"(?s)samples failed .*max_bad_fraction=20.0%.*synth0000[12]/0000.mp4"):
        run(cfg, OmegaConf.to_container(OmegaConf.structured(cfg)), DistInfo())
    reports = (tmp_path / "run" / "bad_samples_rank0.jsonl").read_text().splitlines()
    assert len(reports) >= 8 and all("cannot open video" in r for r in reports)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_single_process_run_trains_and_saves(tmp_path):
    from omegaconf import OmegaConf

    from pretrain.distributed import DistInfo
    from pretrain.runlog import read_metrics
    from pretrain.train import run

    corpus = tmp_path / "c"
    make_corpus(SyntheticConfig(out=str(corpus), videos=2, seconds=8, fps=4, height=48, width=64), progress=False)
    cfg = _cfg(corpus, tmp_path / "run", max_steps=3)
    cfg.optim.accum_steps = 2
    pos = run(cfg, OmegaConf.to_container(OmegaConf.structured(cfg)), DistInfo())
    assert pos.step == 3
    m = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert sorted(m) == [1, 2, 3] and all(r["clips_per_s"] > 0 and r["data_wait_s"] >= 0 for r in m.values())
    saved = torch.load(tmp_path / "run" / "checkpoints" / "3" / "model.pt", weights_only=True)
    assert saved["step"] == 3 and saved["config"]["optim"]["accum_steps"] == 2
