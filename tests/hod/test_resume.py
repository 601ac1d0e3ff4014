"""Kill -9 in the middle of a run, rerun: every clip ends up exactly once, with the same records
as an uninterrupted run."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_args

from egohod.hod.runner import merge, run_shard

REPO = Path(__file__).resolve().parents[2]


def _clips(corpus, path: Path, n: int) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "start_second", "end_second", "text"])
        for i in range(n):
            s = (i % 10) * 0.2
            w.writerow(["vidA" if i % 2 == 0 else "vidB", s, s + 1.0 + (i % 3) * 0.1, f"#C C does step {i}"])
    return path


def _strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "timing"}


def test_kill_and_resume_loses_and_duplicates_nothing(hod_corpus, tmp_path):
    n = 24
    corpus = dict(hod_corpus, clips=_clips(hod_corpus, tmp_path / "many.csv", n))
    out = tmp_path / "killed"
    args = run_args(corpus, out, "batch_size=1", "flush_every=3", "sampling.num_frames=2")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "egohod.hod", "run", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sdir = out / "shards" / "00000-of-00001"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(sdir.glob("part-*.jsonl"))) >= 2:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"run ended on its own before the kill: {proc.stderr.read()[-2000:]}"
    assert not (sdir / "done.json").exists()
    first = [json.loads(x) for p in sorted(sdir.glob("part-*.jsonl")) for x in p.read_text().splitlines()]
    assert 0 < len(first) < n

    from egohod.hod.config import compose

    counts = run_shard(compose("run", args))  # resume in-process
    assert counts["clips"] == n
    merge(out)
    resumed = [json.loads(x) for x in (out / "hod_records.jsonl").read_text().splitlines()]
    assert [r["row"] for r in resumed] == list(range(n))  # nothing lost, nothing twice
    by_key = {r["key"]: r for r in resumed}
    for r in first:  # the records written before the kill are kept as they were
        assert _strip(by_key[r["key"]]) == _strip(r)

    ref_out = tmp_path / "reference"
    run_shard(compose("run", run_args(corpus, ref_out, "batch_size=4", "flush_every=100", "sampling.num_frames=2")))
    merge(ref_out)
    ref = [json.loads(x) for x in (ref_out / "hod_records.jsonl").read_text().splitlines()]
    assert [_strip(r) for r in resumed] == [_strip(r) for r in ref]
    assert (out / "hod.csv").read_text() == (ref_out / "hod.csv").read_text()

    again = run_shard(compose("run", args))  # a third run has nothing to do
    assert again["clips"] == n and len(list(sdir.glob("part-*.jsonl"))) == len(list(sdir.glob("part-*.jsonl")))


def test_a_retry_killed_before_compaction_reads_the_newest_attempt(hod_corpus, tmp_path):
    """retry=failed writes the new record first and drops the superseded one after: a kill in
    between leaves both, and every reader takes the newer attempt; equal attempts are refused."""
    import pytest

    from egohod.hod.config import compose

    out = tmp_path / "r"
    args = run_args(hod_corpus, out)
    run_shard(compose("run", args))
    sdir = out / "shards" / "00000-of-00001"
    parts = sorted(sdir.glob("part-*.jsonl"))
    old = {json.loads(x)["key"]: x for p in parts for x in p.read_text().splitlines()}
    retried = dict(json.loads(old["d0"]), status="ok", stage=None, reason=None, narrations=["C opens the door."],
                   attempt=2)
    (sdir / "part-000099.jsonl").write_text(json.dumps(retried) + "\n")  # killed before compaction
    assert merge(out)["failed"] == 3
    recs = {json.loads(x)["key"]: json.loads(x) for x in (out / "hod_records.jsonl").read_text().splitlines()}
    assert recs["d0"]["narrations"] == ["C opens the door."]
    run_shard(compose("run", args))  # the next run tidies: the failed d0 record is gone from its part
    lines = [x for p in sorted(sdir.glob("part-*.jsonl")) for x in p.read_text().splitlines()]
    assert sum(json.loads(x)["key"] == "d0" for x in lines) == 1
    assert {json.loads(x)["key"]: x for x in lines if json.loads(x)["key"] != "d0"} == \
        {k: v for k, v in old.items() if k != "d0"}  # the other lines byte for byte
    (sdir / "part-000100.jsonl").write_text(json.dumps(retried) + "\n")  # the same attempt twice
    with pytest.raises(RuntimeError, match="two records of attempt 2"):
        merge(out)
