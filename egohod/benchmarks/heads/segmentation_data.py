"""The MS-TCN data layout for action segmentation, read and checked against a feature folder.

Layout (GTEA, 50Salads, Breakfast as MS-TCN ships them)::

    <data>/mapping.txt                  "<id> <class name>" per line, ids 0..C-1
    <data>/groundTruth/<video>.txt      one class name per line, one line per label frame
    <data>/splits/train.split<k>.bundle one "<video>.txt" per line (test.split<k>.bundle likewise)
    <features>/<video>.npy              float features, [D, T] (MS-TCN) or [T, D] (egohod extract)

Feature orientation. ``feature_layout=DT`` or ``TD`` says it; ``feature_layout=auto`` finds the feature size
``D`` from, in order: ``feature_dim=``, the ``embed_dim`` (and ``layout``) that
``egohod extract`` records in ``<features>/index.json``, or the one axis length shared by every
video of the split (the time axis differs between videos). An array whose two axes both equal
``D`` cannot be told apart and is refused (pass ``feature_layout=``); so is a split whose videos
all have the same shape (pass ``feature_dim=`` or ``feature_layout=``).

Frame rates. Feature ``j`` (after keeping every ``sample_rate``-th feature) covers label
frames ``[j * s, (j + 1) * s)`` with ``s = feature_stride * sample_rate``; it is trained on the
label of the frame in the middle of its own ``feature_stride`` window, and its prediction is
repeated ``s`` times (cut or padded with the last label to the video's length). A video whose
feature count times ``feature_stride`` differs from its label count by more than
``feature_stride`` is refused: the features were made at another rate or for another video.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import HeadDataError

__all__ = ["SegmentationVideo", "read_mapping", "read_bundle", "read_labels", "load_split", "upsample",
           "write_recognition", "RECOGNITION_HEADER"]

RECOGNITION_HEADER = "### Frame level recognition: ###"


@dataclass
class SegmentationVideo:
    name: str
    features: np.ndarray   # float32 [D, T'] at the training rate (every sample_rate-th feature)
    labels: list[str]      # ground truth at the label rate (T)
    targets: np.ndarray    # int64 [T'] class ids at the training rate


def read_mapping(path: Path) -> list[str]:
    """Class names by id from ``mapping.txt`` (ids must be 0..C-1)."""
    if not path.is_file():
        raise HeadDataError(f"{path} not found: the MS-TCN layout needs mapping.txt ('<id> <class>' per line)")
    names: dict[int, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].lstrip("-").isdigit():
            raise HeadDataError(f"{path}:{n}: expected '<id> <class name>', got {line!r}")
        names[int(parts[0])] = parts[1]
    if sorted(names) != list(range(len(names))) or len(names) < 2:
        raise HeadDataError(f"{path}: class ids must be 0..C-1 with C >= 2; got {sorted(names)}")
    return [names[i] for i in range(len(names))]


def read_bundle(path: Path) -> list[str]:
    """Video names (file suffix dropped) listed in a split bundle."""
    if not path.is_file():
        raise HeadDataError(f"split file {path} not found (expected splits/train.split<k>.bundle and "
                            "test.split<k>.bundle)")
    names = [Path(line.strip()).stem for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise HeadDataError(f"split file {path} lists no video")
    return names


def read_labels(path: Path, classes: dict[str, int]) -> list[str]:
    if not path.is_file():
        raise HeadDataError(f"ground truth {path} not found for a video listed in the split")
    labels = path.read_text(encoding="utf-8").split()
    if not labels:
        raise HeadDataError(f"{path}: no frame labels")
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise HeadDataError(f"{path}: label(s) {unknown[:5]} are not in mapping.txt")
    return labels


def _extract_index(features: Path) -> dict:
    p = features / "index.json"
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise HeadDataError(f"{p} is unreadable ({type(e).__name__}: {e})") from None


def _feature_file(features: Path, name: str) -> Path:
    p = features / f"{name}.npy"
    if not p.is_file():
        raise HeadDataError(f"video {name!r} is in the split but has no features: {p} not found")
    return p


def _orientation(shapes: dict[str, tuple], layout: str, feature_dim: int | None, index: dict) -> dict[str, bool]:
    """``{video: transpose?}``: whether each array is ``[T, D]`` and must be transposed to ``[D, T]``."""
    bad = {v: s for v, s in shapes.items() if len(s) != 2}
    if bad:
        v, s = next(iter(bad.items()))
        raise HeadDataError(f"features of {v!r} have shape {s}; expected a 2-D array [D, T] or [T, D]")
    if layout in ("DT", "TD"):
        if feature_dim is not None:
            axis = 0 if layout == "DT" else 1
            for v, s in shapes.items():
                if s[axis] != feature_dim:
                    raise HeadDataError(f"features of {v!r} have shape {s}: with feature_layout={layout} D = {s[axis]}, "
                                        f"but feature_dim={feature_dim}")
        return {v: layout == "TD" for v in shapes}
    dim = feature_dim
    if dim is None and index.get("embed_dim"):
        dim = int(index["embed_dim"])
    if dim is None:
        common = set.intersection(*(set(s) for s in shapes.values()))
        if len(common) != 1:
            raise HeadDataError(
                "cannot tell the feature axis from the time axis: "
                + (f"every video has the same shape {next(iter(shapes.values()))}" if common else
                   "no axis length is shared by all videos") + "; pass feature_layout=DT ([D, T], MS-TCN) or "
                "feature_layout=TD ([T, D], egohod extract), or feature_dim=D")
        dim = common.pop()
    out = {}
    for v, s in shapes.items():
        if s[0] == dim and s[1] == dim:
            raise HeadDataError(f"features of {v!r} are square {s}: [D, T] and [T, D] look the same; pass "
                                "feature_layout=DT or feature_layout=TD")
        if dim not in s:
            raise HeadDataError(f"features of {v!r} have shape {s} but the feature size D is {dim} "
                                "(from the other videos, feature_dim= or index.json): wrong features for this run?")
        out[v] = s[1] == dim
    return out


def load_split(data: Path, features: Path, names: list[str], classes: list[str], *, layout: str = "auto",
               feature_dim: int | None = None, feature_stride: int = 1,
               sample_rate: int = 1) -> list[SegmentationVideo]:
    """Read, orient and align the videos ``names`` (see the module docstring); every problem is a
    :class:`HeadDataError` naming the video and the file."""
    if feature_stride < 1 or sample_rate < 1:
        raise HeadDataError(f"feature_stride ({feature_stride}) and sample_rate ({sample_rate}) must be >= 1")
    index = _extract_index(features)
    if layout == "auto" and index.get("layout", "").startswith("[D, T]"):
        layout = "DT"
    elif layout == "auto" and index.get("layout", "").startswith("[T, D]"):
        layout = "TD"
    files = {v: _feature_file(features, v) for v in names}
    shapes = {}
    for v, p in files.items():
        try:
            shapes[v] = tuple(np.load(p, mmap_mode="r").shape)
        except (OSError, ValueError) as e:
            raise HeadDataError(f"{p}: cannot read features ({type(e).__name__}: {e})") from None
    transpose = _orientation(shapes, layout, feature_dim, index)
    ids = {c: i for i, c in enumerate(classes)}
    videos = []
    step = feature_stride * sample_rate
    for v in names:
        labels = read_labels(data / "groundTruth" / f"{v}.txt", ids)
        feats = np.load(files[v]).astype(np.float32, copy=False)
        feats = feats.T if transpose[v] else feats
        n_feat, n_lab = feats.shape[1], len(labels)
        if abs(n_feat * feature_stride - n_lab) > feature_stride:
            raise HeadDataError(
                f"video {v!r}: {n_feat} features x feature_stride {feature_stride} = {n_feat * feature_stride} label "
                f"frames, but groundTruth/{v}.txt has {n_lab}; the features were made at another rate (set "
                "feature_stride= to the label frames per feature) or belong to another video")
        feats = np.ascontiguousarray(feats[:, ::sample_rate])
        frames = np.minimum(np.arange(feats.shape[1]) * step + feature_stride // 2, n_lab - 1)
        targets = np.array([ids[labels[f]] for f in frames], dtype=np.int64)
        videos.append(SegmentationVideo(v, feats, labels, targets))
    dims = {x.features.shape[0] for x in videos}
    if len(dims) > 1:
        raise HeadDataError(f"videos have different feature sizes {sorted(dims)}; all must share one D")
    return videos


def upsample(pred: np.ndarray, step: int, length: int) -> np.ndarray:
    """Predictions at the training rate -> one per label frame (each repeated ``step`` times,
    cut, or padded with the last one, to ``length``)."""
    out = np.repeat(np.asarray(pred), step)[:length]
    if len(out) < length:
        out = np.concatenate([out, np.full(length - len(out), out[-1] if len(out) else 0)])
    return out


def write_recognition(path: Path, labels: list[str]) -> None:
    """One video's prediction in MS-TCN's recognition format (header line, labels on one line)."""
    from ...fileio import atomic_write_text

    atomic_write_text(path, RECOGNITION_HEADER + "\n" + " ".join(labels) + "\n")
