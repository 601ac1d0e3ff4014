"""Per-video features for temporal tasks (Ego4D NLQ / MQ, action segmentation).

For every video under ``videos`` (recursively), windows of ``window`` seconds start every
``stride`` seconds (``t_k = k * stride`` for ``t_k < duration``; the last window is cut at the
video's end). Each window is read with segment-middle sampling of ``num_frames`` frames and
embedded by a frozen encoder (``egohod.load_encoder``). Outputs, mirroring the input tree:

* ``<out>/<rel>.npy`` -- float32 ``[T, D]`` features, one row per window (MS-TCN style
  segmentation models read ``[D, T]``: transpose when loading);
* ``<out>/<rel>.timestamps.npy`` -- float64 ``[T, 2]`` window ``[start, end)`` in seconds;
* ``<out>/index.json`` -- encoder, weights, stride, window, frames and every video's ``T``.

Files are written atomically; videos whose two outputs exist are skipped unless
``overwrite=true``, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .config import ExtractConfig
from .results import atomic_write_text

__all__ = ["window_times", "list_videos", "extract_video", "run_extract"]


def window_times(duration: float, stride: float, window: float) -> np.ndarray:
    """``[T, 2]`` window bounds: starts every ``stride`` seconds, each ``window`` long, clipped."""
    if duration <= 0:
        raise ValueError(f"video duration must be positive, got {duration}")
    starts = np.arange(0.0, duration - 1e-6, stride)
    if len(starts) == 0:
        starts = np.zeros(1)
    return np.stack([starts, np.minimum(starts + window, duration)], axis=1)


def list_videos(root: str | Path, extensions) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f"videos={root} is not a folder")
    exts = set(extensions)
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in exts)
    if not found:
        raise SystemExit(f"no video files ({', '.join(sorted(exts))}) under {root}")
    return found


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, array)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def _stack(clips: list) -> "torch.Tensor":
    import torch

    return torch.from_numpy(np.stack(clips))


class _WindowDataset:
    """Item ``k``: uint8 ``[num_frames, H, W, 3]`` frames of window ``k`` of one video."""

    def __init__(self, path: Path, times: np.ndarray, num_frames: int):
        self.path, self.times, self.num_frames = path, times, num_frames

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, k: int) -> np.ndarray:
        from ..data.video import read_clip

        s, e = self.times[k]
        return read_clip(self.path, float(s), float(e), num_frames=self.num_frames, mode="middle")


def extract_video(encoder, path: Path, stride: float, window: float, num_frames: int, batch: int,
                  workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(features [T, D] float32, times [T, 2])`` of one video; windows decoded by ``workers`` processes."""
    import torch

    from ..data.video import video_duration

    times = window_times(video_duration(path), stride, window)
    loader = torch.utils.data.DataLoader(_WindowDataset(path, times, num_frames), batch_size=batch,
                                         num_workers=workers, collate_fn=_stack)
    feats = []
    with torch.no_grad():
        for clips in loader:
            feats.append(encoder(clips).float().cpu().numpy())
    return np.concatenate(feats).astype(np.float32), times


def run_extract(cfg: ExtractConfig) -> dict:
    """Extract features for every video; returns the index written to ``<out>/index.json``."""
    from tqdm import tqdm

    from ..models import load_encoder
    from .protocols import resolve_device

    import torch

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # reproducible random weights when no checkpoint is given
    encoder = load_encoder(cfg.encoder, checkpoint=cfg.checkpoint, num_frames=cfg.num_frames, seed=cfg.seed).to(device)
    window = cfg.window or cfg.stride
    root, out = Path(cfg.videos), Path(cfg.out)
    index = {"encoder": cfg.encoder, "checkpoint": cfg.checkpoint, "weights": getattr(encoder, "weights", "unknown"),
             "stride": cfg.stride, "window": window, "num_frames": encoder.num_frames,
             "embed_dim": encoder.embed_dim, "layout": "[T, D] float32; timestamps [T, 2] seconds", "videos": {}}
    done = skipped = 0
    for path in tqdm(list_videos(root, cfg.extensions), desc="extract", unit="video"):
        rel = path.relative_to(root).with_suffix("")
        feat_path, time_path = out / f"{rel}.npy", out / f"{rel}.timestamps.npy"
        if not cfg.overwrite and feat_path.is_file() and time_path.is_file():
            n = int(np.load(time_path, mmap_mode="r").shape[0])
            skipped += 1
        else:
            feats, times = extract_video(encoder, path, cfg.stride, window, encoder.num_frames, cfg.batch, cfg.workers)
            _atomic_save_npy(time_path, times)
            _atomic_save_npy(feat_path, feats)
            n = len(times)
            done += 1
        index["videos"][str(rel)] = {"num_windows": n, "features": f"{rel}.npy", "timestamps": f"{rel}.timestamps.npy"}
    atomic_write_text(out / "index.json", json.dumps(index, indent=2) + "\n")
    index["extracted"], index["skipped"] = done, skipped
    return index
