"""Per-clip features for the Ego4D heads (NLQ, MQ): one ``[T, D]`` array per clip, one row per
feature window, ``features_per_second`` rows per second (Ego4D: a 16-frame window every 16
frames at 30 fps, 1.875/s).

Two files are accepted per clip, looked up by its ``clip_uid`` in the features folder:

* ``<clip_uid>.npy``: float ``[T, D]``, as ``egohod extract`` writes it (run it with
  ``stride=0.5333333333333333`` for 1.875/s); its ``settings.json`` / ``index.json`` record the
  stride, which :func:`check_feature_rate` compares with ``features_per_second``, and the
  layout (``feature_layout=DT`` files are transposed back on load);
* ``<clip_uid>.pt``: a ``torch.save``'d ``[T, D]`` tensor (the EgoVLP / Ego4D VSLNet
  convention), read through :func:`egohod.safe_load.load_torch` (no arbitrary unpickling unless
  ``trust_pickle=true``).

:class:`ClipFeatures` loads each clip once, checks every clip has the same ``D`` and that the
values are finite, and reports all clips without a file in one error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from .common import HeadDataError

__all__ = ["EGO4D_FEATURES_PER_SECOND", "ClipFeatures", "check_feature_rate", "feature_file"]

EGO4D_FEATURES_PER_SECOND = 30.0 / 16.0
SUFFIXES = (".npy", ".pt")


def feature_file(root: Path, clip_uid: str) -> Path | None:
    """``<root>/<clip_uid>.npy`` or ``.pt``, whichever exists (``.npy`` first)."""
    for suffix in SUFFIXES:
        p = root / f"{clip_uid}{suffix}"
        if p.is_file():
            return p
    return None


def _recorded(root: Path, key: str):
    """``key`` as ``egohod extract`` recorded it in ``root`` (``settings.json`` / ``index.json``)."""
    for name in ("settings.json", "index.json"):
        p = root / name
        if not p.is_file():
            continue
        try:
            value = json.loads(p.read_text(encoding="utf-8")).get(key)
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise HeadDataError(f"{p} is unreadable ({type(e).__name__}: {e})") from None
        if value is not None:
            return value
    return None


def check_feature_rate(root: str | Path, features_per_second: float) -> float | None:
    """Compare the stride ``egohod extract`` recorded in ``root`` with ``features_per_second``;
    returns the recorded rate (``None`` when the folder does not say). A mismatch is a
    :class:`HeadDataError` saying how to fix it."""
    root = Path(root)
    stride = _recorded(root, "stride")
    if not stride:
        return None
    rate = 1.0 / float(stride)
    if abs(rate - features_per_second) > 1e-3 * features_per_second:
        raise HeadDataError(
            f"{root} holds features every {float(stride):.4f} s ({rate:.4f}/s) but this head reads "
            f"features_per_second={features_per_second:.4f}; re-extract with "
            f"stride={1.0 / features_per_second!r} or set features_per_second={rate!r}")
    return rate


class ClipFeatures:
    """Features of the clips in ``root``, loaded on first use and kept in memory."""

    def __init__(self, root: str | Path, *, dim: int | None = None, trust_pickle: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise HeadDataError(f"features={self.root} is not a folder")
        self.dim, self.trust_pickle = dim, trust_pickle
        self._cache: dict[str, np.ndarray] = {}
        self._dim_source: str | None = None
        # `egohod extract feature_layout=DT` writes [D, T] and records it in index.json
        self.transposed = str(_recorded(self.root, "layout") or "").startswith("[D, T]")

    def missing(self, clip_uids: Iterable[str]) -> list[str]:
        """The clips among ``clip_uids`` without a feature file, sorted."""
        return sorted({c for c in clip_uids if feature_file(self.root, c) is None})

    def require(self, clip_uids: Iterable[str], what: str) -> None:
        """Raise one :class:`HeadDataError` listing every clip of ``what`` without features."""
        clips = sorted(set(clip_uids))
        gone = self.missing(clips)
        if gone:
            shown = ", ".join(gone[:10]) + (f", ... ({len(gone) - 10} more)" if len(gone) > 10 else "")
            raise HeadDataError(
                f"{len(gone)} of {len(clips)} clips of {what} have no features in {self.root} "
                f"(looked for <clip_uid>.npy / .pt): {shown}; extract them, or pass missing_features=skip "
                "to leave their queries out (they are listed in the results)")

    def __getitem__(self, clip_uid: str) -> np.ndarray:
        if clip_uid not in self._cache:
            self._cache[clip_uid] = self._load(clip_uid)
        return self._cache[clip_uid]

    def _load(self, clip_uid: str) -> np.ndarray:
        path = feature_file(self.root, clip_uid)
        if path is None:
            raise HeadDataError(f"clip {clip_uid!r} has no features in {self.root} (<clip_uid>.npy / .pt)")
        if path.suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                raise HeadDataError(f"{path}: cannot read features ({type(e).__name__}: {e})") from None
        else:
            from ...safe_load import load_torch

            obj = load_torch(path, trust_pickle=self.trust_pickle, what="clip features")
            if not hasattr(obj, "numpy"):
                raise HeadDataError(f"{path} holds a {type(obj).__name__}; expected a [T, D] tensor")
            arr = obj.detach().float().cpu().numpy()
        arr = np.asarray(arr, dtype=np.float32)
        if self.transposed and arr.ndim == 2:
            arr = arr.T
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise HeadDataError(f"{path}: features must be [T, D] with T >= 1, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise HeadDataError(f"{path}: features hold NaN or inf values")
        if self.dim is None:
            self.dim, self._dim_source = int(arr.shape[1]), str(path)
        elif arr.shape[1] != self.dim:
            source = f"as {self._dim_source}" if self._dim_source else "as configured"
            raise HeadDataError(f"{path}: features are {arr.shape[1]}-d, expected {self.dim}-d ({source}); "
                                "every clip must come from the same encoder")
        return arr
