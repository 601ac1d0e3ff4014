"""Per-video features for temporal tasks (Ego4D NLQ / MQ, action segmentation).

For every video under ``videos`` (recursively), windows of ``window`` seconds start every
``stride`` seconds (``t_k = k * stride`` for ``t_k < duration``; the last window is cut at the
video's end). Each window is read with segment-middle sampling of ``num_frames`` frames and
embedded by a frozen encoder (``egohod.load_encoder``). Outputs, mirroring the input tree:

* ``<out>/<rel>.npy`` -- float32 ``[T, D]`` features, one row per window, or ``[D, T]`` with
  ``feature_layout=DT`` (the MS-TCN layout); with ``label_fps=F label_stride=S`` the windows
  start every ``S / F`` seconds, one feature per ``S`` label frames (``egohod head segmentation
  feature_stride=S``);
* ``<out>/<rel>.timestamps.npy`` -- float64 ``[T, 2]`` window ``[start, end)`` in seconds;
* ``<out>/settings.json`` -- what the features are a function of (encoder, weights sha256 or
  ``random`` + seed, stride, window, frames, input spec, embedding size), written before the
  first feature file;
* ``<out>/index.json`` -- those settings and every video's ``T``;
* ``<out>/failures.jsonl`` -- one ``{"video", "path", "error"}`` line per video that could not be
  read (only when some failed).

Guarantees: files are written atomically and the folder is locked while a run works in it (a
second run exits naming the holder). A folder holds one set of settings: a run whose settings
differ from ``settings.json`` is refused, naming every differing key, before anything is
computed. Videos whose two outputs exist are skipped unless ``overwrite=true`` (so an
interrupted run resumes where it stopped); a video that fails to decode is recorded in
``failures.jsonl`` and the run goes on; re-running the same command retries exactly the failed
(and missing) videos.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..fileio import FolderLock, atomic_write_bytes, atomic_write_text
from .config import ExtractConfig

__all__ = ["window_times", "list_videos", "extract_video", "extract_settings", "check_settings", "run_extract",
           "ExtractSettingsError", "VideoFailed", "SETTINGS_FILE", "FAILURES_FILE"]

SETTINGS_FILE = "settings.json"
FAILURES_FILE = "failures.jsonl"
LAYOUT = "[T, D] float32; timestamps [T, 2] seconds"
LAYOUTS = {"TD": LAYOUT, "DT": "[D, T] float32; timestamps [T, 2] seconds"}
# settings that change the numbers in the feature files; anything else (batch, workers, device,
# the checkpoint's path) may differ between runs sharing a folder
COMPARED = ("encoder", "weights", "seed", "stride", "window", "num_frames", "embed_dim", "input_spec", "layout")


class ExtractSettingsError(ConfigError):
    """``out`` already holds features made with other settings."""


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
        raise ConfigError(f"videos={root} is not a folder")
    exts = set(extensions)
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in exts)
    if not found:
        raise ConfigError(f"no video files ({', '.join(sorted(exts))}) under {root}")
    return found


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


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


class VideoFailed(Exception):
    """One video could not be decoded; ``error`` is the underlying exception, ``path`` the video."""

    def __init__(self, path: Path, error: BaseException):
        super().__init__(f"{path}: {type(error).__name__}: {error}")
        self.path, self.error = path, error


def extract_video(encoder, path: Path, stride: float, window: float, num_frames: int, batch: int,
                  workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(features [T, D] float32, times [T, 2])`` of one video; windows decoded by ``workers`` processes.

    Raises :class:`VideoFailed` when the video cannot be probed or a window cannot be decoded
    (errors of the encoder itself propagate unchanged).
    """
    import torch

    from ..data.video import video_duration

    try:
        times = window_times(video_duration(path), stride, window)
    except Exception as e:  # noqa: BLE001 - any probe failure is this video's failure, reported with its cause
        raise VideoFailed(path, e) from e
    loader = iter(torch.utils.data.DataLoader(_WindowDataset(path, times, num_frames), batch_size=batch,
                                              num_workers=workers, collate_fn=_stack))
    feats = []
    with torch.no_grad():
        while True:
            try:
                clips = next(loader)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - decoding (in this or a worker process) failed for this video
                raise VideoFailed(path, e) from e
            feats.append(encoder(clips).float().cpu().numpy())
    return np.concatenate(feats).astype(np.float32), times


def window_stride(cfg: ExtractConfig) -> float:
    """Seconds between window starts: ``stride``, or ``label_stride / label_fps`` when labels set the rate."""
    return cfg.label_stride / cfg.label_fps if cfg.label_fps else float(cfg.stride)


def extract_settings(cfg: ExtractConfig, encoder) -> dict:
    """What the features of a run are a function of (plus, for the record, the checkpoint path)."""
    weights = str(getattr(encoder, "weights", "unknown"))
    random = weights.startswith("random")
    spec = encoder.input_spec.to_dict()
    spec.pop("extra", None)
    return {"encoder": cfg.encoder, "checkpoint": cfg.checkpoint, "weights": weights, "random_weights": random,
            "seed": cfg.seed if random else None, "stride": window_stride(cfg),
            "window": float(cfg.window or window_stride(cfg)), "label_fps": cfg.label_fps,
            "label_stride": cfg.label_stride if cfg.label_fps else None,
            "num_frames": int(encoder.num_frames), "embed_dim": int(encoder.embed_dim), "input_spec": spec,
            "layout": LAYOUTS[cfg.feature_layout]}


def check_settings(out: Path, settings: dict) -> None:
    """Write ``<out>/settings.json``, or check that the one there matches ``settings``."""
    path = out / SETTINGS_FILE
    if not path.is_file():
        if any(out.rglob("*.npy")):
            raise ExtractSettingsError(
                f"{out} holds .npy files but no {SETTINGS_FILE}: they were made by an older egohod or another "
                "tool, with unknown settings; choose another out= folder (or remove these files)")
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ExtractSettingsError(f"{path} is unreadable ({type(e).__name__}: {e}); the settings of the features "
                                   f"in {out} are unknown: choose another out= folder") from None
    diff = [k for k in COMPARED if old.get(k) != settings.get(k)]
    if diff:
        lines = "\n".join(f"  {k}: folder has {old.get(k)!r}, this run has {settings.get(k)!r}" for k in diff)
        raise ExtractSettingsError(
            f"{out} holds features extracted with other settings ({path}):\n{lines}\n"
            "one folder holds one set of settings: choose another out= folder, or run with the folder's settings")


def _record_failures(out: Path, failures: list[dict]) -> None:
    path = out / FAILURES_FILE
    if failures:
        atomic_write_text(path, "".join(json.dumps(f) + "\n" for f in failures))
    else:
        path.unlink(missing_ok=True)


def run_extract(cfg: ExtractConfig) -> dict:
    """Extract features for every video; returns the index written to ``<out>/index.json`` plus
    ``extracted`` / ``skipped`` counts and the ``failed`` records (also in ``failures.jsonl``)."""
    from tqdm import tqdm

    from ..models import load_encoder
    from ..device import resolve_device

    root, out = Path(cfg.videos), Path(cfg.out)
    videos = list_videos(root, cfg.extensions)
    device = resolve_device(cfg.device)
    with FolderLock(out, what="egohod extract"):
        encoder = load_encoder(cfg.encoder, checkpoint=cfg.checkpoint, num_frames=cfg.num_frames,
                               seed=cfg.seed).to(device)
        settings = extract_settings(cfg, encoder)
        check_settings(out, settings)
        window = settings["window"]
        index = {**settings, "videos": {}}
        done = skipped = 0
        failures = []
        for path in tqdm(videos, desc="extract", unit="video"):
            rel = path.relative_to(root).with_suffix("")
            feat_path, time_path = out / f"{rel}.npy", out / f"{rel}.timestamps.npy"
            if not cfg.overwrite and feat_path.is_file() and time_path.is_file():
                n = int(np.load(time_path, mmap_mode="r").shape[0])
                skipped += 1
            else:
                try:
                    feats, times = extract_video(encoder, path, settings["stride"], window, encoder.num_frames, cfg.batch,
                                                 cfg.workers)
                except VideoFailed as e:  # this video only; the run goes on
                    failures.append({"video": str(rel), "path": str(path),
                                     "error": f"{type(e.error).__name__}: {e.error}"})
                    for stale in (feat_path, time_path):  # overwrite=true: no features of the old file remain
                        stale.unlink(missing_ok=True)
                    continue
                _atomic_save_npy(time_path, times)
                _atomic_save_npy(feat_path, feats.T.copy() if cfg.feature_layout == "DT" else feats)
                n = len(times)
                done += 1
            index["videos"][str(rel)] = {"num_windows": n, "features": f"{rel}.npy",
                                         "timestamps": f"{rel}.timestamps.npy"}
        index["failed"] = [f["video"] for f in failures]
        atomic_write_text(out / "index.json", json.dumps(index, indent=2) + "\n")
        _record_failures(out, failures)
    return {**index, "extracted": done, "skipped": skipped, "failures": failures}
