"""MS-TCN training time for one fold of GTEA-sized data, as JSON.

    python bench/head_segmentation.py [--videos 28] [--frames 1000] [--dim 2048] [--classes 11] [--folds 4]
        [--head mstcn] [--epochs 50] [--max-seconds 0] [--device auto] [--threads N] [--out FILE]

Random features (GTEA's shape: 28 videos, ~1,000 frames, 2048-d I3D, 11 classes, 4 folds, so
one fold trains on 21 videos and tests on 7) go through the code ``egohod head segmentation``
runs: :func:`egohod.benchmarks.heads.segmentation.train_head` (batch 1, Adam, the MS-TCN loss,
a checkpoint after every epoch) with the head's paper defaults, then prediction and scoring of
the test fold. The numbers are times only: the labels are random, so the scores mean nothing.
``--max-seconds`` stops training after the epoch that passes it (0: no limit); the record says
how many epochs ran and the time per epoch.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, replace

import numpy as np

from egohod.measure import emit, machine


def make_videos(n: int, frames: int, dim: int, classes: int, seed: int = 0):
    from egohod.benchmarks.heads.segmentation_data import SegmentationVideo

    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(classes - 1)] + ["background"]
    out = []
    for i in range(n):
        t = int(frames * rng.uniform(0.8, 1.2))
        targets = np.repeat(rng.integers(0, classes, t // 50 + 1), 50)[:t]
        feats = rng.standard_normal((dim, t), dtype=np.float32)
        out.append(SegmentationVideo(f"v{i:02d}", feats, [names[c] for c in targets], targets.astype(np.int64)))
    return out, names


class _OutOfTime(Exception):
    pass


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=28)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=11)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--head", default="mstcn")
    ap.add_argument("--epochs", type=int, default=None, help="default: the head's (MS-TCN 50)")
    ap.add_argument("--max-seconds", type=float, default=0.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default=None, help="also write the JSON record here")
    args = ap.parse_args(argv)

    import torch

    from egohod.benchmarks.heads import HEADS, head_options
    from egohod.benchmarks.heads.common import HeadRun
    from egohod.benchmarks.heads.segmentation import (SegmentationConfig, predict_videos, score_videos,
                                                      train_head)
    from egohod.device import resolve_device

    device = resolve_device(args.device, "--device")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    videos, classes = make_videos(args.videos, args.frames, args.dim, args.classes)
    n_test = args.videos // args.folds
    train, test = videos[n_test:], videos[:n_test]
    gen_s = time.perf_counter() - t0

    options = head_options(args.head, {} if args.epochs is None else {"epochs": args.epochs}, "segmentation")
    torch.manual_seed(0)
    model = HEADS.get(args.head)(args.dim, args.classes, options).to(device)
    cfg = SegmentationConfig(data="-", features="-", out="-", head={"name": args.head, **asdict(options)},
                             progress=False)
    epoch_times: list[float] = []

    class TimedRun(HeadRun):  # notes the time at every epoch's checkpoint; stops at --max-seconds
        def save_checkpoint(self, rel, model, meta):
            path = super().save_checkpoint(rel, model, meta)
            _sync(device)
            epoch_times.append(time.perf_counter())
            if args.max_seconds and epoch_times[-1] - start > args.max_seconds:
                raise _OutOfTime
            return path

    with tempfile.TemporaryDirectory() as tmp, TimedRun(tmp, asdict(cfg)) as run:
        _sync(device)
        start = time.perf_counter()
        try:
            train_head(run, "fold1", model, train, [], classes, replace(cfg, out=tmp), device)
        except _OutOfTime:
            pass
        train_s = time.perf_counter() - start
        t1 = time.perf_counter()
        scores, _ = score_videos(predict_videos(model, test, device), test, classes, 1, ["background"])
        _sync(device)
        predict_s = time.perf_counter() - t1
    epochs = len(epoch_times)
    per_epoch = train_s / max(epochs, 1)
    record = {
        "benchmark": "head_segmentation", "head": args.head, "device": str(device),
        "videos": args.videos, "train_videos": len(train), "test_videos": len(test),
        "frames_total_train": int(sum(v.features.shape[1] for v in train)), "dim": args.dim, "classes": args.classes,
        "epochs_planned": options.epochs, "epochs_run": epochs, "train_s": round(train_s, 3),
        "s_per_epoch": round(per_epoch, 4),
        "train_s_all_epochs_extrapolated": round(per_epoch * options.epochs, 2) if epochs < options.epochs else None,
        "predict_score_test_fold_s": round(predict_s, 3), "generate_s": round(gen_s, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "scores_on_random_labels": {k: round(v, 2) for k, v in scores.items()},
        "machine": machine(device),
    }
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
