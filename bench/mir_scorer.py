"""EK-100 MIR scorer time at the full test-set size (9668 videos x 3842 captions), as JSON.

    python bench/mir_scorer.py [--videos 9668] [--captions 3842] [--repeats 1] [--out mir.json]

Scores a random similarity matrix against a sparse graded relevance matrix (1 % of the pairs at
0.25 / 0.5 / 1.0, every video and caption with at least one relevant partner) with
``egohod.benchmarks.scorers.ek100_mir_scores``; reports the best and median wall time over
``--repeats``. The scorer's correctness is tested in tests/benchmarks/test_scorers.py.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from egohod.measure import emit, machine


def inputs(videos: int, captions: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sim = rng.standard_normal((videos, captions)).astype(np.float32)
    rel = (rng.random((videos, captions)) < 0.01) * rng.choice([0.25, 0.5, 1.0], size=(videos, captions))
    k = min(videos, captions)
    rel[np.arange(k), np.arange(k)] = 1.0
    rel[np.arange(k, videos), rng.integers(0, captions, videos - k)] = 1.0
    rel[rng.integers(0, videos, captions), np.arange(captions)] = 1.0
    return sim, rel


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=9668)
    ap.add_argument("--captions", type=int, default=3842)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the JSON record here")
    args = ap.parse_args(argv)
    if min(args.videos, args.captions, args.repeats) < 1:
        ap.error("--videos, --captions and --repeats must be >= 1")

    from egohod.benchmarks.scorers import ek100_mir_scores

    sim, rel = inputs(args.videos, args.captions)
    times, scores = [], {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        scores = ek100_mir_scores(sim, rel)
        times.append(time.perf_counter() - t0)
    record = {
        "benchmark": "mir_scorer",
        "videos": args.videos, "captions": args.captions, "repeats": args.repeats,
        "best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
        "scores": {k: round(float(v), 3) for k, v in scores.items()},
        "machine": machine(extra={"numpy": np.__version__, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}),
    }
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
