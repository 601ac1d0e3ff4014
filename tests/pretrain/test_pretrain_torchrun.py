"""End to end: `torchrun --nproc_per_node=2` (gloo, CPU) pretraining of egovideo_tiny on a
synthetic chunked corpus with one corrupt video.

One uninterrupted run (A) is the reference. A second run (B) is SIGKILLed once its first
checkpoint exists and then resumed; its losses after the resume must equal A's step by step.
A third run (C) owns its folder: a second torchrun on it is refused naming C's rank 0, and when
C's agent is SIGKILLed its workers stop (checkpointing) instead of training on as orphans.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from egohod.data.synthetic import SyntheticConfig, make_corpus

ROOT = Path(__file__).resolve().parents[2]
STEPS, SAVE_EVERY = 12, 4


def _cmd(corpus: Path, out: Path, *extra: str, steps: int = STEPS) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(ROOT / "pretrain" / "train.py"), "--config-name", "tiny",
            f"data.csv={corpus / 'metadata.csv'}", f"data.video_root={corpus / 'videos'}",
            "data.holdout_fraction=0.2", "val.every_epochs=4", "log.progress=false",
            f"train.out={out}", f"train.max_steps={steps}", f"train.save_every_steps={SAVE_EVERY}",
            # the short-run settings these tests were written for (the tiny recipe itself runs 200 steps)
            "train.epochs=4", "train.log_every_steps=1", "optim.warmup_steps=8", "optim.schedule=constant", *extra]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}


def _run(cmd, timeout=240):
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, f"training failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    return p


def _losses(out: Path) -> dict[int, float]:
    from pretrain.runlog import read_metrics

    return {s: r["loss"] for s, r in read_metrics(out / "metrics.jsonl").items()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    make_corpus(SyntheticConfig(out=str(d), videos=8, seconds=16, fps=8, height=64, width=96), progress=False)
    # one corrupt video: every clip of synth00003 fails to decode and must be replaced
    (d / "videos" / "synth00003" / "0000.mp4").write_bytes(b"\x00\x01 not an mp4" * 100)
    return d


def _kill_tree(pid: int) -> None:
    """SIGKILL torchrun and its workers (they run in sessions of their own)."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


@pytest.fixture(scope="module")
def ek100(tmp_path_factory):
    """The benchmark suite's EK-100 MIR fixture (official file formats, 6 clips)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_fixtures", ROOT / "tests" / "benchmarks" / "fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_ek100(tmp_path_factory.mktemp("ek100"))


@pytest.fixture(scope="module")
def runs(corpus, ek100, tmp_path_factory):
    """Run A (uninterrupted) and run B (killed after its first checkpoint, then resumed), the
    first parts side by side to save wall time."""
    out_a, out_b = tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")
    pa = subprocess.Popen(_cmd(corpus, out_a, "train.grad_checksum=true", f"val.ek100_mir_dir={ek100}"), env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    pb = subprocess.Popen(_cmd(corpus, out_b), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT)
    deadline = time.time() + 240
    try:
        while not (out_b / "checkpoints" / "last").exists():
            assert pb.poll() is None, f"run B ended before its first checkpoint:\n{pb.stderr.read()[-4000:]}"
            assert time.time() < deadline, "run B wrote no checkpoint in time"
            time.sleep(0.1)
    finally:
        _kill_tree(pb.pid)  # mid-training, no clean-up
    killed_at = max(_losses(out_b))
    log_a = pa.communicate(timeout=240)[0]
    assert pa.returncode == 0, f"run A failed:\n{log_a[-6000:]}"
    _run(_cmd(corpus, out_b, "train.resume=true"))
    return out_a, out_b, killed_at


@pytest.fixture(scope="module")
def run_a(runs):
    return runs[0]


def test_loss_goes_down(run_a):
    losses = _losses(run_a)
    assert sorted(losses) == list(range(1, STEPS + 1))
    first = np.mean([losses[s] for s in range(1, 5)])
    last = np.mean([losses[s] for s in range(STEPS - 3, STEPS + 1)])
    assert last < first - 0.05, f"loss did not go down: first steps {first:.3f}, last steps {last:.3f}"


def test_gradients_identical_across_ranks(run_a):
    rows = [[json.loads(x) for x in (run_a / f"grad_checksums_rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert len(rows[0]) == len(rows[1]) == STEPS
    for a, b in zip(*rows):
        assert a["step"] == b["step"] and a["sumsq"] > 0
        assert a["sum"] == pytest.approx(b["sum"], rel=1e-9, abs=1e-12)
        assert a["sumsq"] == pytest.approx(b["sumsq"], rel=1e-9)


def test_checkpoints_are_complete_and_self_describing(run_a):
    ck = run_a / "checkpoints"
    assert sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) == list(range(SAVE_EVERY, STEPS + 1, SAVE_EVERY))
    assert os.readlink(ck / "last") == str(STEPS)
    model_file = torch.load(ck / "last" / "model.pt", weights_only=True)
    assert model_file["step"] == STEPS and model_file["model_name"] == "egovideo_tiny"
    assert model_file["config"]["model"]["name"] == "egovideo_tiny"
    assert all(k.startswith("module.") for k in model_file["state_dict"])
    state = torch.load(ck / "last" / "train_state.pt", weights_only=True)
    assert state["position"]["step"] == STEPS and len(state["rng"]) == 2
    assert state["geometry"]["world_size"] == 2 and "state" in state["optimizer"]
    assert not list(ck.glob(".*")), "temporary checkpoint folders left behind"


def test_checkpoint_loads_into_create_model_and_load_encoder(run_a):
    import egohod

    path = run_a / "checkpoints" / "last" / "model.pt"
    saved = torch.load(path, weights_only=True)["state_dict"]
    model = egohod.create_model("egovideo_tiny", checkpoint=path)
    assert torch.equal(model.visual.conv1.weight, saved["module.visual.conv1.weight"])
    assert torch.equal(model.slowfast_projection, saved["module.slowfast_projection"])
    enc = egohod.load_encoder("egovideo_tiny", checkpoint=path)
    frames = torch.randint(0, 256, (2, 4, 40, 48, 3), dtype=torch.uint8)
    feats = enc(frames)
    assert feats.shape == (2, enc.embed_dim) and torch.isfinite(feats).all()
    fresh = egohod.load_encoder("egovideo_tiny")
    assert not torch.allclose(feats, fresh(frames))


def test_bad_samples_reported_counted_and_replaced(run_a):
    lines = [json.loads(x) for r in (0, 1) for x in (run_a / f"bad_samples_rank{r}.jsonl").read_text().splitlines()]
    assert lines, "the corrupt video produced no bad-sample report"
    assert all("synth00003" in f["path"] and f["reason"] for f in lines)
    assert all(f["source"].endswith(tuple(f":{i}" for i in range(2, 200))) for f in lines)
    from pretrain.runlog import read_metrics

    last = read_metrics(run_a / "metrics.jsonl")[STEPS]
    assert last["bad_samples"] == len(lines) and 0 < last["bad_fraction"] < 0.25


def test_validation_on_held_out_videos(run_a):
    from pretrain.runlog import read_metrics

    val = read_metrics(run_a / "metrics.jsonl", event="val")
    assert val, "no validation record"
    rec = val[max(val)]
    assert rec["num_clips"] > 0 and 0 <= rec["v2t_r1"] <= 100 and 0 <= rec["t2v_r5"] <= 100
    # zero-shot EK-100 MIR of the checkpoint, through the benchmark suite's protocol
    assert rec["ek100_mir_num_clips"] == 6 and rec["ek100_mir_num_captions"] == 4
    assert 0 < rec["ek100_mir_map_avg"] <= 100 and 0 < rec["ek100_mir_ndcg_avg"] <= 100


def test_kill_then_resume_reproduces_the_uninterrupted_run(runs):
    run_a, out_b, killed_at = runs
    from pretrain.runlog import read_metrics

    records = [json.loads(x) for x in (out_b / "metrics.jsonl").read_text().splitlines()]
    for event in ("train", "val"):  # the steps B ran past its checkpoint before the kill are not kept twice
        steps = [r["step"] for r in records if r["event"] == event]
        assert len(steps) == len(set(steps)), f"metrics.jsonl holds a {event} step twice: {steps}"
    resumes = [r for r in records if r["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["step"] % SAVE_EVERY == 0 and resumes[0]["step"] >= SAVE_EVERY
    a, b = _losses(run_a), _losses(out_b)
    assert sorted(b) == list(range(1, STEPS + 1))
    for s in range(resumes[0]["step"] + 1, STEPS + 1):
        assert b[s] == pytest.approx(a[s], abs=1e-6), f"step {s}: resumed {b[s]} vs uninterrupted {a[s]}"
    assert killed_at < STEPS
    fb = torch.load(out_b / "checkpoints" / "last" / "model.pt", weights_only=True)["state_dict"]
    fa = torch.load(run_a / "checkpoints" / "last" / "model.pt", weights_only=True)["state_dict"]
    assert max((fa[k] - fb[k]).abs().max().item() for k in fa) < 1e-5
    assert read_metrics(out_b / "metrics.jsonl")[STEPS]["bad_samples"] == read_metrics(run_a / "metrics.jsonl")[STEPS]["bad_samples"]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_folder_lock_and_orphaned_workers_stop_when_the_agent_is_killed(corpus, tmp_path):
    import socket

    import psutil

    out = tmp_path / "run_c"
    log_c = (tmp_path / "c.log").open("w")
    pc = subprocess.Popen(_cmd(corpus, out, "val.every_epochs=0", "train.orphan_timeout_s=30", steps=400), env=_env(),
                          stdout=log_c, stderr=subprocess.STDOUT, cwd=ROOT)
    workers: list[int] = []
    t_start = time.time()

    def wait_for(cond, what):
        while not cond():
            assert pc.poll() is None, f"run C ended early:\n{(tmp_path / 'c.log').read_text()[-4000:]}"
            assert time.time() < t_start + 180, f"run C: {what} not in time"
            time.sleep(0.1)

    try:
        wait_for(lambda: (out / ".lock").exists() and (out / ".lock").read_text(), "no lock")
        holder = json.loads((out / ".lock").read_text())
        # a second torchrun on the same folder (while C builds its model): refused at once, naming the holder
        d = subprocess.run(_cmd(corpus, out, "train.resume=true"), env=_env(), capture_output=True, text=True,
                           timeout=180, cwd=ROOT)
        t_d = time.time() - t_start
        wait_for(lambda: '"event": "train"' in (out / "metrics.jsonl").read_text()
                 if (out / "metrics.jsonl").exists() else False, "no training step")
        workers = [p.pid for p in psutil.Process(pc.pid).children(recursive=True)]
        assert holder["pid"] in workers and len(workers) == 2
        assert d.returncode != 0
        assert f"is in use by pretrain/train.py (PID {holder['pid']} on host {socket.gethostname()}" in d.stderr, \
            d.stderr[-3000:]
        assert "Traceback" not in d.stderr.split("is in use by")[0][-2000:]
        assert (out / "metrics.jsonl").read_text().count('"event": "header"') == 1
        assert (out / "metrics.jsonl").read_text().count('"event": "resume"') == 0
        # the agent dies without a word: its workers must stop, not train on as orphans
        os.kill(pc.pid, 9)
        pc.wait(timeout=30)
        t0 = time.time()
        while any(_alive(w) for w in workers) and time.time() - t0 < 60:
            time.sleep(0.1)
        gone = time.time() - t0
        assert not any(_alive(w) for w in workers), "workers kept training after their agent was killed"
    finally:
        for pid in [pc.pid, *workers]:
            if _alive(pid):
                psutil.Process(pid).kill()
        log_c.close()
    assert gone < 20, f"workers took {gone:.1f} s to stop"
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    stopped = [r for r in records if r["event"] == "stopped"]
    assert len(stopped) == 1 and stopped[0]["signal"] == "launcher died", (tmp_path / "c.log").read_text()[-3000:]
    from pretrain.checkpointing import find_last

    assert find_last(out).name == str(stopped[0]["step"])  # stopped cleanly: the last step is checkpointed
    assert not (out / ".lock").exists()  # released on the way out
    print(f"second run refused after {t_d:.1f} s; workers gone {gone:.1f} s after the agent's SIGKILL "
          f"(stopped at step {stopped[0]['step']})")
