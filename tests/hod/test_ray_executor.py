"""``executor=ray``: the Ray Data actor class on its own (fast), and a whole run on a local Ray
(slow: starting Ray plus actors that import torch takes longer than 30 s on 2 busy cores)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_args
from omegaconf import OmegaConf

from egohod.hod.clips import load_clips
from egohod.hod.config import compose
from egohod.hod.pipeline import PipelineContext, process_batch
from egohod.hod.ray_executor import HodBatchWorker


def _strip(r):
    return {k: v for k, v in r.items() if k != "timing"}


def test_ray_worker_matches_the_local_step(hod_corpus, tmp_path):
    cfg = compose("run", run_args(hod_corpus, tmp_path / "o"))
    clips = load_clips(str(hod_corpus["clips"]))[:4]
    worker = HodBatchWorker(OmegaConf.to_container(cfg, resolve=True))
    batch = {"clip": np.array([json.dumps(c.to_dict()) for c in clips], dtype=object)}
    out = worker(batch)
    recs = [json.loads(s) for s in out["record"]]
    local = process_batch(clips, PipelineContext.from_config(cfg))
    assert [_strip(r) for r in recs] == [_strip(r) for r in local]
    assert [r["key"] for r in recs] == ["a0", "a1", "b0", "a2"] and recs[3]["status"] == "failed"


@pytest.mark.slow
def test_run_with_local_ray(hod_corpus, tmp_path):
    from egohod.hod.cli import main

    out = tmp_path / "ray"
    assert main(["run", *run_args(hod_corpus, out), "executor=ray", "ray.num_cpus=2", "ray.concurrency=1"]) == 0
    assert main(["merge", f"out={out}"]) == 0
    ref = tmp_path / "local"
    assert main(["run", *run_args(hod_corpus, ref)]) == 0
    assert main(["merge", f"out={ref}"]) == 0
    a = [_strip(json.loads(x)) for x in (out / "hod_records.jsonl").read_text().splitlines()]
    b = [_strip(json.loads(x)) for x in (ref / "hod_records.jsonl").read_text().splitlines()]
    assert a == b and len(a) == 8
