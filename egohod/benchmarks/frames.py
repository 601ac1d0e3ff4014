"""Which frames the zero-shot protocols read, following EgoHOD's evaluation scripts.

* ``egohod_frame_ids(start, end, n)`` -- EgoHOD's ``get_frame_ids`` in evaluation mode: the
  range is cut into ``n`` segments of ``(end - start - 1) / n`` frames, segment bounds are
  rounded (``np.round``, half to even), clamped to the range, and the integer midpoint of each
  segment's bounds is taken. Used for EK-100 (MIR and CLS) and EgoMCQ.
* ``egtea_frame_ids(start, end, n)`` -- EgoHOD's EGTEA script: the midpoints of ``n`` equal
  segments of ``linspace(start, end, n + 1)``, truncated to integers.
* ``time_window_frame_ids`` -- EgoHOD's whole-video loader: ``[start, end)`` seconds at the
  file's frame rate, the end clamped to the video, at least ``n`` frames long.
* ``chunked_frame_ids`` -- EgoHOD's chunked loader (Ego4D 15-s chunks
  ``{root}/{video_uid}/{chunk:04d}.mp4``): frame ids on the whole video's timeline (the end at
  least one second after the start), each read from its chunk (clamped to the chunk's last
  frame).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.video import VideoReadError, chunk_path, probe_video, read_frames

__all__ = [
    "egohod_frame_ids",
    "egtea_frame_ids",
    "time_window_frame_ids",
    "read_time_window",
    "read_chunked_window",
    "find_video",
]


def egohod_frame_ids(start: int, end: int, n: int) -> np.ndarray:
    if end < start or n <= 0:
        raise ValueError(f"bad frame range [{start}, {end}) for {n} frames")
    seg = float(end - start - 1) / n
    i = np.arange(n)
    lo = (np.round(seg * i) + start).astype(np.int64)
    hi = (np.round(seg * (i + 1)) + start).astype(np.int64)
    lo = np.minimum(lo, end - 1)
    hi = np.minimum(hi, end)
    return (lo + hi) // 2


def egtea_frame_ids(start: int, end: int, n: int) -> np.ndarray:
    edges = np.linspace(start, end, n + 1)
    return np.convolve(edges, [0.5, 0.5], mode="valid").astype(int)


def time_window_frame_ids(start_sec: float, end_sec: float, fps: float, num_video_frames: int, n: int) -> np.ndarray:
    end_sec = min(end_sec, num_video_frames / fps)
    if end_sec == 0:
        end_sec = num_video_frames / fps
    offset = int(np.round(start_sec * fps))
    total = max(int((end_sec - start_sec) * fps), n)
    ids = egohod_frame_ids(offset, min(offset + total, num_video_frames), n)
    return np.clip(ids, 0, num_video_frames - 1)


def read_time_window(path: str | Path, start_sec: float, end_sec: float, n: int) -> np.ndarray:
    """uint8 ``[n, H, W, 3]`` frames of ``[start_sec, end_sec)`` of a whole-video file."""
    info = probe_video(path)
    if start_sec * info.fps >= info.num_frames:
        raise VideoReadError(path, f"clip start {start_sec:.3f}s is past the video's end "
                                   f"({info.num_frames / info.fps:.3f}s)")
    return read_frames(path, time_window_frame_ids(start_sec, end_sec, info.fps, info.num_frames, n))


def read_chunked_window(root: str | Path, video_uid: str, start_sec: float, end_sec: float, n: int,
                        chunk_seconds: float = 15) -> np.ndarray:
    """uint8 ``[n, H, W, 3]`` frames of ``[start_sec, end_sec)`` from 15-s chunk files."""
    first = chunk_path(root, video_uid, int(start_sec // chunk_seconds))
    if not first.is_file():
        raise VideoReadError(first, f"chunk file missing for clip at {start_sec:.3f}s of video {video_uid}")
    fps = probe_video(first).fps
    end_sec = max(end_sec, start_sec + 1)
    ids = egohod_frame_ids(int(np.round(start_sec * fps)), int(np.round(end_sec * fps)), n)
    per_chunk = chunk_seconds * fps
    chunk_of = np.floor(ids / per_chunk + 1e-9).astype(np.int64)
    frames: list = [None] * n
    for c in np.unique(chunk_of):
        sel = np.nonzero(chunk_of == c)[0]
        p = chunk_path(root, video_uid, int(c))
        if not p.is_file():
            raise VideoReadError(p, f"chunk file missing (frames {ids[sel].tolist()} of video {video_uid})")
        length = probe_video(p).num_frames
        local = np.minimum(length - 1, (ids[sel] - int(math.floor(c * per_chunk))).astype(np.int64))
        got = read_frames(p, local)
        for j, i in enumerate(sel):
            frames[i] = got[j]
    return np.stack(frames)


def find_video(root: str | Path, candidates: Sequence[str], what: str) -> Path:
    """The first existing ``root/candidate``; the error lists every path tried."""
    root = Path(root)
    tried = [root / c for c in candidates]
    for p in tried:
        if p.is_file():
            return p
    raise VideoReadError(tried[0], f"video for {what} not found; tried " + ", ".join(str(p) for p in tried))
