"""Input side of the pipeline: the clip list and the frames of each clip.

The clip list is a HOD CSV (``video_id,start_second,end_second,text[,dataset,uid]``) or an Ego4D
``narration.json``, read with :mod:`egohod.data.metadata`. Each clip gets a ``key`` that is
unique within the list and stable across reruns: its ``uid`` when every row has a distinct one,
else ``r<row>``.

Videos are either chunked (``{root}/{video_id}/{chunk:04d}.mp4``, ``chunk_seconds`` each) or one
file per video (``{root}/{video_id}.mp4``). Frames are sampled at segment middles
(``lambda x T`` per clip) with :mod:`egohod.data.video`.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from .types import Clip


def load_clips(path: str, fmt: str = "auto", ego4d_window: str = "egovlp", limit: int = 0) -> list[Clip]:
    from ..data.metadata import read_ego4d_narrations, read_hod_csv

    p = Path(path)
    if fmt == "auto":
        fmt = "ego4d" if p.suffix.lower() == ".json" else "hod_csv"
    if fmt == "hod_csv":
        recs = read_hod_csv(p)
    elif fmt == "ego4d":
        win = ego4d_window if ego4d_window == "egovlp" else float(ego4d_window)
        recs = read_ego4d_narrations(p, window=win)
    else:
        raise ValueError(f"clips_format must be auto, hod_csv or ego4d, got {fmt!r}")
    if limit:
        recs = recs[: int(limit)]
    uids = [r.uid for r in recs]
    use_uid = all(uids) and len(set(uids)) == len(uids)
    clips = []
    for i, r in enumerate(recs):
        extra = {"dataset": r.dataset, "uid": r.uid, "texts": list(r.texts), "source": r.source}
        clips.append(Clip(r.uid if use_uid else f"r{i:08d}", i, r.video_id, float(r.start), float(r.end),
                          r.texts[0] if r.texts else "", extra))
    return clips


def sample_times(start: float, end: float, n: int) -> np.ndarray:
    """Segment-middle times of ``n`` equal segments of ``[start, end)`` (used when no video is read)."""
    edges = np.linspace(start, end, n + 1)
    return (edges[:-1] + edges[1:]) / 2


class ClipReadError(RuntimeError):
    """A clip's frames could not be read; the message names the video and the reason."""


class VideoSource:
    """Reads the sampled frames of clips from a video root (chunked or one file per video)."""

    def __init__(self, root: str, layout: str = "auto", chunk_seconds: float = 15.0, ext: str = "mp4",
                 resize_short: int | None = None, end_tolerance: float = 1.0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"video root {self.root} is not a directory")
        if layout not in ("auto", "chunked", "file"):
            raise ValueError(f"layout must be auto, chunked or file, got {layout!r}")
        self.layout, self.chunk_seconds, self.ext = layout, float(chunk_seconds), ext.lstrip(".")
        self.resize_short, self.end_tolerance = resize_short, float(end_tolerance)

    def _layout_of(self, video_id: str) -> str:
        if self.layout != "auto":
            return self.layout
        return "chunked" if (self.root / video_id).is_dir() else "file"

    @functools.lru_cache(maxsize=4096)
    def chunks(self, video_id: str) -> tuple[int, ...]:
        """Indices of the chunk files of a chunked video (a directory listing; nothing is opened)."""
        d = self.root / video_id
        found = tuple(sorted(int(q.stem) for q in d.glob(f"*.{self.ext}") if q.stem.isdigit()))
        if not found:
            raise ClipReadError(f"{d}: no chunk files *.{self.ext} for video {video_id}")
        return found

    def video_info(self, video_id: str) -> tuple[float, float]:
        """(length in seconds, fps) of a video. For a chunked video this opens its last chunk (the
        length) -- :meth:`read` asks for it only for clips that reach that chunk."""
        from ..data.video import chunk_path, probe_video

        if self._layout_of(video_id) == "file":
            p = self.root / f"{video_id}.{self.ext}"
            if not p.is_file():
                raise ClipReadError(f"{p}: video file not found")
            info = probe_video(p)
            return info.num_frames / info.fps, info.fps
        last_chunk = self.chunks(video_id)[-1]
        last = probe_video(chunk_path(self.root, video_id, last_chunk, self.ext))
        return last_chunk * self.chunk_seconds + last.num_frames / last.fps, last.fps

    def _check_end(self, clip: Clip, length: float) -> None:
        if clip.start_second >= length:
            raise ClipReadError(f"clip [{clip.start_second:.3f}s, {clip.end_second:.3f}s) starts after the end of "
                                f"video {clip.video_id} ({length:.3f}s)")
        if clip.end_second > length + self.end_tolerance:
            raise ClipReadError(f"clip [{clip.start_second:.3f}s, {clip.end_second:.3f}s) ends "
                                f"{clip.end_second - length:.3f}s beyond the end of video {clip.video_id} "
                                f"({length:.3f}s; tolerance sampling.end_tolerance={self.end_tolerance:g}s)")

    def read(self, clip: Clip, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 frames [T, H, W, 3], times [T]) of a clip. Raises :class:`ClipReadError` or
        ``VideoReadError`` with the reason (missing/undecodable file, clip outside the video).

        A chunked clip opens only the chunks it overlaps, as the pretraining loader does
        (:func:`egohod.data.video.read_chunked_clips`): one unreadable chunk fails the clips that
        touch it and no other clip of the video."""
        from ..data.video import chunk_path, clip_frame_range, probe_video, read_chunked_clip, read_clip, \
            sample_segment_indices

        if self._layout_of(clip.video_id) == "file":
            length, fps = self.video_info(clip.video_id)
            self._check_end(clip, length)
            total = int(math.floor(length * fps + 1e-6))
            frames = read_clip(self.root / f"{clip.video_id}.{self.ext}", clip.start_second, clip.end_second,
                               num_frames, "middle", self.resize_short)
        else:
            length = None  # known only for clips that reach the last chunk (ends before it need no clamping)
            if clip.end_second > self.chunks(clip.video_id)[-1] * self.chunk_seconds:
                length, _ = self.video_info(clip.video_id)
                self._check_end(clip, length)
            frames = read_chunked_clip(self.root, clip.video_id, clip.start_second, clip.end_second, num_frames,
                                       self.chunk_seconds, "middle", self.resize_short, ext=self.ext)
            first_chunk = int(math.floor(clip.start_second / self.chunk_seconds))
            fps = probe_video(chunk_path(self.root, clip.video_id, first_chunk, self.ext)).fps  # opened just now
            total = None if length is None else int(math.floor(length * fps + 1e-6))
        first, last = clip_frame_range(clip.start_second, clip.end_second, fps, total, self.root / clip.video_id)
        times = sample_segment_indices(first, last, num_frames, "middle") / fps
        return frames, times.astype(np.float64)
