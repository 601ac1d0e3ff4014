"""A generated action-segmentation set in the MS-TCN layout, where temporal context matters:
long segments, per-frame features that are noisy copies of their class's mean (so one frame
alone is often misclassified, a window of frames rarely). For tests, the README tour and the
timing benchmark; never a result about real video.

    write_segmentation_set(root, num_videos=8)   # root/data/{mapping.txt, groundTruth/, splits/}, root/features/
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ...fileio import atomic_write_bytes, atomic_write_text

__all__ = ["write_segmentation_set"]


def _labels(rng, length: int, classes: list[str], segment: tuple[int, int]) -> list[str]:
    out: list[str] = []
    prev = None
    while len(out) < length:
        choice = [c for c in classes if c != prev]
        prev = choice[rng.integers(len(choice))]
        out += [prev] * int(rng.integers(segment[0], segment[1] + 1))
    return out[:length]


def write_segmentation_set(root: str | Path, *, num_videos: int = 8, num_classes: int = 4, dim: int = 16,
                           length: tuple[int, int] = (150, 220), segment: tuple[int, int] = (20, 45),
                           noise: float = 1.0, separation: float = 0.6, folds: int = 4, layout: str = "DT",
                           seed: int = 0) -> tuple[Path, Path]:
    """Write the set; returns ``(data_dir, features_dir)``. Classes are ``action0..`` plus
    ``background``; video ``i`` is in the test bundle of fold ``i % folds + 1`` and in the train
    bundles of the others. Features are ``[dim, T]`` (``layout="DT"``) or ``[T, dim]``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    data, feats = root / "data", root / "features"
    classes = [f"action{i}" for i in range(num_classes)] + ["background"]
    atomic_write_text(data / "mapping.txt", "".join(f"{i} {c}\n" for i, c in enumerate(classes)))
    means = rng.normal(size=(len(classes), dim)) * separation
    names = [f"video{i:02d}" for i in range(num_videos)]
    for name in names:
        labels = _labels(rng, int(rng.integers(length[0], length[1] + 1)), classes, segment)
        atomic_write_text(data / "groundTruth" / f"{name}.txt", "\n".join(labels) + "\n")
        ids = np.array([classes.index(c) for c in labels])
        x = (means[ids] + noise * rng.normal(size=(len(ids), dim))).astype(np.float32)  # [T, D]
        buf = io.BytesIO()
        np.save(buf, x.T if layout == "DT" else x)
        atomic_write_bytes(feats / f"{name}.npy", buf.getvalue())
    for k in range(1, folds + 1):
        test = [n for i, n in enumerate(names) if i % folds + 1 == k]
        train = [n for n in names if n not in test]
        atomic_write_text(data / "splits" / f"test.split{k}.bundle", "".join(f"{n}.txt\n" for n in test))
        atomic_write_text(data / "splits" / f"train.split{k}.bundle", "".join(f"{n}.txt\n" for n in train))
    return data, feats
