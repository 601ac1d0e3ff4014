"""A run owns its folder and recovers from damage: folder lock, refusal to overwrite, resume from
the newest loadable checkpoint, checkpoint retention, a metrics log without repeated steps, and
the launcher watchdog. The torchrun path (second run refused, SIGKILLed agent) is in
test_pretrain_torchrun.py."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egohod.fileio import FolderLock, FolderLockedError
from pretrain.checkpointing import (checkpoint_steps, find_last, load_latest, load_train_state, prune_checkpoints,
                                    save_checkpoint)
from pretrain.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _save(out, step, keep_last=0):
    return save_checkpoint(out, step, {"state_dict": {"module.w": torch.full((2,), float(step))}},
                           {"format": "egohod-pretrain-v1", "position": {"step": step}}, f"step: {step}\n",
                           keep_last=keep_last)


# ----------------------------------------------------------------------------- retention


def test_keep_last_keeps_the_newest_checkpoints(tmp_path):
    for s in (2, 4, 6, 8):
        _save(tmp_path, s, keep_last=2)
    assert checkpoint_steps(tmp_path) == [6, 8]
    assert os.readlink(tmp_path / "checkpoints" / "last") == "8"
    _save(tmp_path, 10, keep_last=0)  # 0 keeps all
    assert checkpoint_steps(tmp_path) == [6, 8, 10]


def test_retention_never_deletes_last_nor_checkpoints_past_the_resumed_step(tmp_path):
    for s in (2, 4, 6, 8):
        _save(tmp_path, s)
    ck = tmp_path / "checkpoints"
    os.remove(ck / "last")
    os.symlink("2", ck / "last")
    assert prune_checkpoints(tmp_path, keep_last=1, upto=6) == [4]
    # 2 is what `last` points to; 8 lies past step 6 (an abandoned future the resumed run re-saves)
    assert checkpoint_steps(tmp_path) == [2, 6, 8]


# ----------------------------------------------------------------------------- resume fallback


class _Payload:  # an object a checkpoint must not be allowed to build
    pass


def test_resume_falls_back_to_the_newest_loadable_checkpoint_naming_the_bad_file(tmp_path):
    for s in (4, 8):
        _save(tmp_path, s)
    bad = tmp_path / "checkpoints" / "8" / "model.pt"
    bad.write_bytes(bad.read_bytes()[:100])  # cut off mid-write (e.g. disk full)
    warnings = []
    ckpt, model_file, state = load_latest(tmp_path, warn=warnings.append)
    assert ckpt.name == "4" and state["position"]["step"] == 4 and model_file["state_dict"]["module.w"][0] == 4
    assert any(f"cannot load checkpoint {bad.parent}" in w and str(bad) in w for w in warnings), warnings
    assert any("resuming from" in w and "step 4" in w for w in warnings)


def test_resume_with_no_loadable_checkpoint_lists_every_failure(tmp_path):
    for s in (4, 8):
        _save(tmp_path, s)
    for s in (4, 8):
        (tmp_path / "checkpoints" / str(s) / "train_state.pt").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"(?s)no checkpoint .* loads.*8.*4"):
        load_latest(tmp_path, warn=lambda m: None)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_latest(tmp_path / "empty")


def test_an_unsafe_checkpoint_stops_the_search_instead_of_being_skipped(tmp_path):
    from egohod.safe_load import UnsafeFileError

    for s in (4, 8):
        _save(tmp_path, s)
    torch.save({"format": "egohod-pretrain-v1", "x": _Payload()}, tmp_path / "checkpoints" / "8" / "train_state.pt")
    with pytest.raises(UnsafeFileError, match="trust_pickle"):
        load_latest(tmp_path, warn=lambda m: None)


# ----------------------------------------------------------------------------- metrics log


def test_trim_jsonl_drops_what_a_resume_redoes(tmp_path):
    from pretrain.runlog import trim_jsonl

    p = tmp_path / "metrics.jsonl"
    recs = [{"event": "header"}, {"event": "start"}] + [{"event": "train", "step": s} for s in range(1, 7)]
    recs += [{"event": "val", "step": 4}, {"event": "val", "step": 6}]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"event": "train", "st')  # last line cut off
    assert trim_jsonl(p, 4) == 4
    kept = [json.loads(x) for x in p.read_text().splitlines()]
    assert kept == recs[:2] + [{"event": "train", "step": s} for s in range(1, 5)] + [{"event": "val", "step": 4}]
    assert trim_jsonl(p, 4) == 0 and trim_jsonl(tmp_path / "absent.jsonl", 0) == 0


def test_run_logger_never_writes_a_step_twice(tmp_path, capsys):
    from pretrain.runlog import RunLogger, read_metrics

    log = RunLogger(tmp_path, True, {}, None, progress=False)
    log.log_step(1, {"loss": 1.0, "clips_per_s": 1.0, "data_wait_s": 0.0, "step_time_s": 1.0})
    log.close()
    log = RunLogger(tmp_path, True, {}, None, progress=False)  # a later launch in the same folder
    assert log.logged["train"] == {1}
    log.log_step(1, {"loss": 2.0, "clips_per_s": 1.0, "data_wait_s": 0.0, "step_time_s": 1.0})
    log.log_val(1, {"v2t_r1": 50.0})
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in lines] == ["header", "train", "val"]
    assert read_metrics(tmp_path / "metrics.jsonl")[1]["loss"] == 1.0
    assert "already holds a train record for step 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the run folder


def test_a_folder_with_checkpoints_needs_resume_or_overwrite(tmp_path):
    from pretrain.train import OutputFolderError, prepare_out_dir

    _save(tmp_path, 4)
    (tmp_path / "metrics.jsonl").write_text('{"event": "header"}\n')
    (tmp_path / "bad_samples_rank1.jsonl").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "checkpoints" / ".8.tmp999").mkdir()  # left by a killed writer
    with pytest.raises(OutputFolderError, match=r"steps 4\).*train.resume=true.*train.overwrite=true"):
        prepare_out_dir(tmp_path, TrainConfig(out=str(tmp_path)))
    assert checkpoint_steps(tmp_path) == [4] and (tmp_path / "metrics.jsonl").exists()
    assert prepare_out_dir(tmp_path, TrainConfig(resume=True))[0].endswith(".8.tmp999 left by a killed run")
    assert checkpoint_steps(tmp_path) == [4] and not (tmp_path / "checkpoints" / ".8.tmp999").exists()
    notes = prepare_out_dir(tmp_path, TrainConfig(overwrite=True))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()
    assert not (tmp_path / "bad_samples_rank1.jsonl").exists() and (tmp_path / "notes.txt").read_text() == "mine"
    assert any("deleted" in n for n in notes)


def test_resume_and_overwrite_together_are_refused():
    from pretrain.config import PretrainConfig, validate

    c = PretrainConfig()
    c.data.csv, c.data.video_root = "x.csv", "v"
    c.train.resume = c.train.overwrite = True
    with pytest.raises(ValueError, match="train.resume=true .* train.overwrite=true"):
        validate(c)


# ----------------------------------------------------------------------------- in-process runs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from egohod.data.synthetic import SyntheticConfig, make_corpus

    d = tmp_path_factory.mktemp("corpus")
    make_corpus(SyntheticConfig(out=str(d), videos=2, seconds=8, fps=4, height=48, width=64), progress=False)
    return d


def _cfg(corpus, out, **train):
    from pretrain.config import PretrainConfig, validate

    c = PretrainConfig()
    c.data.csv, c.data.video_root = str(corpus / "metadata.csv"), str(corpus / "videos")
    c.data.resize_short, c.data.batch_size, c.data.num_workers, c.data.pin_memory = 40, 4, 0, False
    c.data.slow_frames = 8
    c.model.name = "egovideo_tiny"
    c.train.out, c.train.device, c.train.log_every_steps = str(out), "cpu", 1
    c.val.every_epochs = 0
    c.log.wandb = c.log.progress = False
    for k, v in train.items():
        setattr(c.train, k, v)
    validate(c)
    return c


def _run(cfg):
    from omegaconf import OmegaConf

    from pretrain.distributed import DistInfo
    from pretrain.train import run

    return run(cfg, OmegaConf.to_container(OmegaConf.structured(cfg)), DistInfo())


def test_a_second_run_on_a_locked_folder_stops_at_once_naming_the_holder(corpus, tmp_path):
    out = tmp_path / "run"
    with FolderLock(out, what="the first run"):
        with pytest.raises(FolderLockedError, match=rf"train.out: .*PID {os.getpid()} on host {socket.gethostname()}"):
            _run(_cfg(corpus, out, max_steps=2))
    assert sorted(p.name for p in out.iterdir()) == [], "the refused run wrote into the folder"


def test_old_key_train_out_dir_still_runs_and_its_folder_resumes(corpus, tmp_path):
    """``train.out_dir=`` (the old name of ``train.out``) names the run folder, with one
    FutureWarning; a folder whose recorded configs say ``train.out_dir`` resumes."""
    out = tmp_path / "run"
    args = [f"data.csv={corpus / 'metadata.csv'}", f"data.video_root={corpus / 'videos'}", "data.resize_short=40",
            "data.batch_size=4", "data.num_workers=0", "data.pin_memory=false", "data.slow_frames=8",
            "model.name=egovideo_tiny", f"train.out_dir={out}", "train.device=cpu", "train.max_steps=2",
            "train.save_every_steps=2", "val.every_epochs=0", "log.wandb=false", "log.progress=false"]
    p = subprocess.run([sys.executable, str(ROOT / "pretrain" / "train.py"), *args], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr.count("FutureWarning: pretrain/train.py: train.out_dir= is deprecated; use train.out=") == 1
    assert checkpoint_steps(out) == [2] and not (tmp_path / "outputs").exists()

    import yaml

    def recorded_with_out_dir(cfg: dict) -> dict:
        cfg["train"]["out_dir"] = cfg["train"].pop("out")
        return cfg

    for f in (out / "config.yaml", out / "checkpoints" / "2" / "config.yaml"):
        f.write_text(yaml.safe_dump(recorded_with_out_dir(yaml.safe_load(f.read_text()))))
    model_file = torch.load(out / "checkpoints" / "2" / "model.pt", weights_only=True)
    recorded_with_out_dir(model_file["config"])
    torch.save(model_file, out / "checkpoints" / "2" / "model.pt")
    assert _run(_cfg(corpus, out, max_steps=4, save_every_steps=2, resume=True)).step == 4
    assert checkpoint_steps(out) == [2, 4]
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r.get("event") == "resume"] == [2]


def test_rerun_refused_then_resume_past_a_corrupt_checkpoint(corpus, tmp_path, capfd):
    from pretrain.runlog import read_metrics
    from pretrain.train import OutputFolderError

    out = tmp_path / "run"
    assert _run(_cfg(corpus, out, max_steps=4, save_every_steps=2)).step == 4
    assert checkpoint_steps(out) == [2, 4]
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(OutputFolderError, match="train.resume=true .* train.overwrite=true"):
        _run(_cfg(corpus, out, max_steps=4, save_every_steps=2))
    assert (out / "metrics.jsonl").read_text() == before and checkpoint_steps(out) == [2, 4]
    assert not (out / ".lock").exists(), "the lock file must go with the lock"

    bad = out / "checkpoints" / "4" / "train_state.pt"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    capfd.readouterr()
    assert _run(_cfg(corpus, out, max_steps=6, save_every_steps=2, keep_last=2, resume=True)).step == 6
    err = capfd.readouterr().err
    assert f"cannot load checkpoint {out / 'checkpoints' / '4'}" in err and str(bad) in err and "resuming from" in err
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in recs if r["event"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6], "metrics.jsonl holds a step twice or misses one"
    assert [r["step"] for r in recs if r["event"] == "resume"] == [2]
    order = [(r["event"], r.get("step")) for r in recs]
    assert order.index(("resume", 2)) < order.index(("train", 3)), "steps past the checkpoint must be logged anew"
    assert sum(r["event"] == "header" for r in recs) == 1
    # 2 went by retention; 4 was trained again and re-saved whole; last -> 6
    assert checkpoint_steps(out) == [4, 6] and find_last(out).name == "6"
    ckpt, _, state = load_latest(out)
    assert ckpt.name == "6" and state["position"]["step"] == 6
    assert load_train_state(out / "checkpoints" / "4")[1]["position"]["step"] == 4
    assert sorted(read_metrics(out / "metrics.jsonl")) == [1, 2, 3, 4, 5, 6]


# ----------------------------------------------------------------------------- launcher watchdog

_CHILD = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: print("sigterm", flush=True))  # a worker that cannot stop cleanly
from pretrain.distributed import start_parent_watchdog
start_parent_watchdog(exit_after_s=1.0, poll_s=0.1)
print("ready", flush=True)
time.sleep(120)
"""
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=open(sys.argv[2], "w"), start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_watchdog_stops_an_orphaned_worker(tmp_path):
    import psutil

    log = tmp_path / "child.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, _CHILD, str(log)], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 60
        while "ready" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the child never started its watchdog"
            time.sleep(0.1)
    finally:
        parent.kill()  # the launcher dies without a word (SIGKILL)
        parent.wait()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    else:
        psutil.Process(child).kill()
        pytest.fail("the orphaned child kept running")
    gone = time.monotonic() - t0
    assert "sigterm" in log.read_text(), "the watchdog did not ask the worker to stop first"
    assert 0.9 < gone < 10, f"exited {gone:.1f} s after its parent (expected ~1 s: exit_after_s)"
