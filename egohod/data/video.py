"""Reading clips out of videos: one file per video, or 15-second chunks per video.

Frames are picked by *segment-based sampling*: the clip ``[start_sec, end_sec)`` is cut into
``num_frames`` equal segments and one frame is taken from each -- the segment's middle frame
in evaluation (``mode="middle"``), a uniformly random frame in training (``mode="random"``).

Two layouts are supported:

* plain: one file per video, read with :func:`read_clip`;
* chunked: ``{root}/{video_id}/{chunk:04d}.mp4``, chunk ``c`` holding seconds
  ``[c * chunk_seconds, (c + 1) * chunk_seconds)`` of the video (Ego4D as EgoHOD stores it),
  read with :func:`read_chunked_clip`; a clip may span two (or more) chunks.

Decoding (``backend="auto"``/``"pyav"``) uses :class:`PyAVReader`: one open file per clip and
chunk, a seek only where a keyframe lies between the decoder's position and the next wanted
frame, non-reference frames skipped unless wanted, and only wanted frames converted to RGB (and
resized, if asked, at that step). ``backend="decord"`` reads with decord instead (which converts
every decoded frame; 1.7-2.8x more CPU per clip in ``bench/dataloader.py``); ``"auto"`` falls back to
decord when PyAV fails on a file. Random access costs what the encoding makes it cost: see
:mod:`egohod.data.prepare` for the layout the loader reads fastest. Every failure -- missing
file, undecodable file, clip outside the video -- raises :class:`VideoReadError` naming the path
and the reason.

All functions return ``uint8`` arrays shaped ``[T, H, W, 3]`` (RGB).
"""
from __future__ import annotations

import functools
import math
import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "PyAVReader",
    "VideoInfo",
    "VideoReadError",
    "chunk_path",
    "clip_frame_range",
    "probe_video",
    "read_chunked_clip",
    "read_chunked_clips",
    "read_clip",
    "read_clips",
    "read_frames",
    "resized_shape",
    "sample_segment_indices",
    "video_duration",
    "VideoWriter",
    "open_video_stream",
    "write_video",
]

SAMPLING_MODES = ("middle", "random")


class VideoReadError(RuntimeError):
    """A clip could not be read. ``path`` and ``reason`` say which file and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def open_video_stream(path: str | os.PathLike):
    """``(container, first video stream)`` of a file opened with PyAV for full decoding (threaded);
    :class:`VideoReadError` when it cannot be opened or has no video. Close the container."""
    import av

    try:
        container = av.open(str(path))
    except Exception as e:
        raise VideoReadError(path, f"cannot open video ({type(e).__name__}: {e})") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "no video stream in file")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


# ----------------------------------------------------------------------------- sampling


def sample_segment_indices(
    start_frame: int,
    end_frame: int,
    num_frames: int,
    mode: str = "middle",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices for segment-based sampling of the frame range ``[start_frame, end_frame)``.

    The range is split into ``num_frames`` equal (real-valued) segments. ``"middle"`` takes the
    frame at each segment's centre, ``"random"`` a uniformly drawn frame inside each segment
    (from ``rng``; a fresh unseeded generator when ``rng`` is None). Ranges shorter than
    ``num_frames`` repeat frames. Returned indices are non-decreasing and lie in the range.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if end_frame <= start_frame:
        raise ValueError(f"empty frame range [{start_frame}, {end_frame})")
    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}")
    length = end_frame - start_frame
    edges = np.arange(num_frames + 1, dtype=np.float64) * (length / num_frames)
    if mode == "middle":
        offsets = np.floor((edges[:-1] + edges[1:]) / 2.0).astype(np.int64)
    else:
        rng = rng if rng is not None else np.random.default_rng()
        lo = np.floor(edges[:-1]).astype(np.int64)
        hi = np.maximum(lo + 1, np.floor(edges[1:]).astype(np.int64))
        offsets = rng.integers(lo, hi)
    return start_frame + np.clip(offsets, 0, length - 1)


def clip_frame_range(start_sec: float | None, end_sec: float | None, fps: float, total_frames: int | None,
                     path: str | os.PathLike = "<video>") -> tuple[int, int]:
    """Frame range ``[first, last)`` covering ``[start_sec, end_sec)`` at ``fps``.

    ``None`` bounds mean the start/end of the video. An end past the video's last frame is
    clamped to it (narration windows often overrun the end by a fraction of a second); a clip
    that starts at or after the end, or with ``end <= start``, raises :class:`VideoReadError`.
    """
    start = 0.0 if start_sec is None else float(start_sec)
    if start < 0:
        raise VideoReadError(path, f"clip start {start:.3f}s is negative")
    first = int(math.floor(start * fps + 1e-6))
    if end_sec is None:
        if total_frames is None:
            raise VideoReadError(path, "end_sec=None needs the video length")
        last = total_frames
    else:
        end = float(end_sec)
        if end <= start:
            raise VideoReadError(path, f"empty clip: end {end:.3f}s <= start {start:.3f}s")
        last = max(first + 1, int(math.ceil(end * fps - 1e-6)))
    if total_frames is not None:
        if first >= total_frames:
            raise VideoReadError(
                path,
                f"clip [{start:.3f}s, {end_sec}s) lies outside the video "
                f"({total_frames} frames = {total_frames / fps:.3f}s at {fps:g} fps)",
            )
        last = min(last, total_frames)
    return first, last


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) with the short side scaled to ``short_side`` (aspect ratio kept)."""
    if short_side is None:
        return height, width
    if short_side <= 0:
        raise ValueError(f"resize_short must be positive, got {short_side}")
    if height <= width:
        return short_side, max(1, int(round(width * short_side / height)))
    return max(1, int(round(height * short_side / width))), short_side


# ----------------------------------------------------------------------------- backends


def _have_decord() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def _file_key(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoReadError(path, "file not found") from None
    except OSError as e:
        raise VideoReadError(path, f"cannot stat file ({e.strerror})") from None
    if st.st_size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")
    return path, int(st.st_mtime_ns), int(st.st_size)


# find_stream_info decodes frames to guess codec parameters (for h264 up to ~7 when B-frames may
# occur): 3-7 ms per open. Letting it decode only keyframes gives the same stream parameters
# (size, rate, frame count come from the container) in ~0.5 ms.
_OPEN_OPTIONS = {"skip_frame": "nonkey"}


def _open_container(path: str, fast: bool = True):
    import av

    try:
        return av.open(path, options=_OPEN_OPTIONS if fast else None)
    except Exception as e:  # av raises many error types (InvalidDataError, EOFError, ...)
        raise VideoReadError(path, f"cannot open video ({type(e).__name__}: {e})") from None


def _open_with_info(path: str):
    """``(container, VideoInfo, start_time)``; codecs whose frame size only the decoder knows
    (e.g. MPEG-4 part 2 in mp4) are opened again with full stream probing. ``start_time`` (stream
    time base) is read before anything is demuxed: reading the whole file can change it."""
    container = _open_container(path)
    try:
        vs = container.streams.video
        if vs and (vs[0].codec_context.width <= 0 or vs[0].codec_context.height <= 0):
            container.close()
            container = _open_container(path, fast=False)
            vs = container.streams.video
        start = (vs[0].start_time or 0) if vs else 0
        return container, _info_of(container, path), start
    except BaseException:
        container.close()
        raise


def _info_of(container, path: str) -> VideoInfo:
    if not container.streams.video:
        raise VideoReadError(path, "no video stream in file")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise VideoReadError(path, "video stream has no frame rate")
    fps = float(rate)
    n = int(stream.frames or 0)
    width, height = stream.codec_context.width, stream.codec_context.height
    if n <= 0:
        # Containers without a frame count: count packets of the stream (no decoding), then rewind.
        try:
            n = sum(1 for p in container.demux(stream) if p.size > 0)
            container.seek(0, stream=stream, backward=True, any_frame=False)
        except Exception as e:
            raise VideoReadError(path, f"cannot read packets ({type(e).__name__}: {e})") from None
    if n <= 0 or width <= 0 or height <= 0:
        raise VideoReadError(path, f"video stream is empty (frames={n}, size={width}x{height})")
    return VideoInfo(num_frames=n, fps=fps, width=width, height=height)


@functools.lru_cache(maxsize=4096)
def _probe_cached(key: tuple[str, int, int]) -> VideoInfo:
    container, info, _ = _open_with_info(key[0])
    container.close()
    return info


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate and size of a video (container metadata, cached per file)."""
    return _probe_cached(_file_key(str(path)))


def video_duration(path: str | os.PathLike) -> float:
    """Duration in seconds: number of frames / frame rate."""
    return probe_video(path).duration


def _read_decord(path: str, indices: np.ndarray, size: tuple[int, int] | None,
                 num_threads: int) -> dict[int, np.ndarray]:
    import decord

    kwargs = {"num_threads": num_threads}
    if size is not None:
        kwargs["height"], kwargs["width"] = size
    vr = decord.VideoReader(path, **kwargs)
    n = len(vr)
    if indices.max() >= n:
        raise VideoReadError(path, f"frame {int(indices.max())} requested but decord sees {n} frames")
    uniq = np.unique(indices)
    frames = vr.get_batch(uniq.tolist()).asnumpy()
    return {int(i): f for i, f in zip(uniq, frames)}


_LOCAL = threading.local()


def _to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    """RGB24 pixels of a decoded frame, resized to ``size`` (h, w) if given. One swscale context
    per thread, single-threaded: a fresh one per frame (PyAV's ``to_ndarray``) costs 3-5x more."""
    reformatter = getattr(_LOCAL, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _LOCAL.reformatter = VideoReformatter()
    h, w = (None, None) if size is None else size
    return reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="BILINEAR",
                                threads=1).to_ndarray()


class _NeedsSequential(Exception):
    """Timestamps missing or inconsistent: random access is not safe for this file."""


class PyAVReader:
    """Random access to the frames of one video with PyAV (one open file; use as a context manager).

    For each wanted frame (in display order) the decoder continues from where it is when no
    keyframe lies between its position and the frame, and otherwise seeks to the keyframe before
    the frame (found in the container's index, no packets read). Frames that are only decoded on
    the way are not converted to RGB, and non-reference frames (e.g. x264's B-frames without
    pyramid) that are not wanted are skipped by the decoder. Files without a per-frame index
    are read by seeking to the first wanted frame's time and decoding forward; files whose
    timestamps do not match their frame count are decoded from the start. ``info`` holds the
    container metadata; ``frames_decoded`` counts the frames the decoder produced (wanted or
    not) over this reader's reads.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        self.path = str(path)
        _file_key(self.path)  # missing / empty file -> clear error
        self.container, self.info, self._t0 = _open_with_info(self.path)
        self.frames_decoded = 0
        try:
            self.stream = self.container.streams.video[0]
            ctx = self.stream.codec_context
            ctx.thread_count = max(1, int(num_threads))
            ctx.thread_type = "SLICE"  # frame threading would delay output and defeat per-packet skipping
            self._tb = float(self.stream.time_base)
            entries = self.stream.index_entries
            self._entries = entries if len(entries) == self.info.num_frames else None
        except BaseException:
            self.container.close()
            raise

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "PyAVReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _index(self, pts) -> int:
        if pts is None:
            raise _NeedsSequential("frame without timestamp")
        return int(round((pts - self._t0) * self._tb * self.info.fps))

    def _keyframe_at_or_before(self, i: int) -> int:
        """Decode position of the last keyframe at or before decode position ``i`` (closed GOPs:
        equal to the keyframe's display index)."""
        e = self._entries
        for k in range(min(i, len(e) - 1), -1, -1):
            if e[k].is_keyframe:
                return k
        raise _NeedsSequential("no keyframe before the frame in the index")

    def read(self, indices: Sequence[int] | np.ndarray, size: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
        """``{index: uint8 [H, W, 3]}`` for the unique ``indices`` (resized to ``size`` = (h, w))."""
        wanted = np.unique(np.asarray(indices, dtype=np.int64))
        if wanted.size == 0:
            return {}
        if wanted[0] < 0 or wanted[-1] >= self.info.num_frames:
            raise VideoReadError(self.path, f"frame indices {int(wanted[0])}..{int(wanted[-1])} outside the video's "
                                            f"{self.info.num_frames} frames")
        try:
            return self._read_random_access(wanted, size)
        except _NeedsSequential:
            return self._read_sequential(wanted, size)

    def _read_random_access(self, wanted: np.ndarray, size) -> dict[int, np.ndarray]:
        ctx, stream, container = self.stream.codec_context, self.stream, self.container
        want = set(int(i) for i in wanted)
        got: dict[int, np.ndarray] = {}
        pos = -1  # display index of the last frame the decoder returned
        packets = None
        skip = None
        for t in wanted:
            t = int(t)
            if t in got:
                continue
            # Without a full index (e.g. Matroska cues list keyframes only) the demuxer finds the
            # keyframe: seek for the first wanted frame, then decode forward.
            k = self._keyframe_at_or_before(t) if self._entries is not None else None
            for _attempt in range(3):
                if packets is None or (k is not None and k > pos):
                    # the demuxer seeks on presentation time: the keyframe's, as its display index is k
                    at = t if k is None else k
                    ts = self._t0 + int((at + 0.5) / self.info.fps / self._tb)  # half a frame late: robust to rounding
                    container.seek(ts, stream=stream, backward=True, any_frame=False)
                    ctx.flush_buffers()
                    packets = container.demux(stream)
                    pos, first = -1, None
                else:
                    first = -1  # continuing: no keyframe check
                for packet in packets:
                    if packet.pts is not None:
                        s = "DEFAULT" if self._index(packet.pts) in want else "NONREF"
                        if s != skip:
                            ctx.skip_frame = skip = s
                    for frame in ctx.decode(packet):
                        self.frames_decoded += 1
                        pos = self._index(frame.pts)
                        if first is None:
                            first = pos
                        if pos in want and pos not in got:
                            got[pos] = _to_rgb(frame, size)
                    if t in got or pos > t:
                        break
                else:
                    packets = None  # end of file reached: the next read seeks again
                if t in got:
                    break
                if first is not None and first > t and k is not None and k > 0:
                    # open GOP: the frame is displayed before this keyframe; start one GOP earlier
                    k = self._keyframe_at_or_before(k - 1)
                    packets = None
                    continue
                raise _NeedsSequential(f"frame {t} not found after seeking to keyframe {k}")
        if skip != "DEFAULT":
            ctx.skip_frame = "DEFAULT"
        return got

    def _read_sequential(self, wanted: np.ndarray, size) -> dict[int, np.ndarray]:
        """Decode from the first frame, counting frames (files without index or timestamps)."""
        ctx = self.stream.codec_context
        ctx.skip_frame = "DEFAULT"
        self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
        ctx.flush_buffers()
        want = set(int(i) for i in wanted)
        last = int(wanted[-1])
        got: dict[int, np.ndarray] = {}
        for i, frame in enumerate(self.container.decode(self.stream)):
            self.frames_decoded += 1
            if i in want:
                got[i] = _to_rgb(frame, size)
            if i >= last:
                break
        missing = sorted(want - set(got))
        if missing:
            raise VideoReadError(self.path, f"could not decode frames {missing[:5]}{'...' if len(missing) > 5 else ''} "
                                            f"(the stream ended after {len(got) and i + 1} frames)")
        return got


def _gather(path: str, indices: np.ndarray, frames: dict[int, np.ndarray], out: np.ndarray | None = None,
            rows: np.ndarray | None = None) -> np.ndarray:
    """Frames ``indices`` from ``frames`` stacked into a new array, or into ``out[rows]``."""
    missing = sorted(set(int(i) for i in indices) - set(frames))
    if missing:
        raise VideoReadError(path, f"could not decode frames {missing[:5]}{'...' if len(missing) > 5 else ''}")
    if out is None:
        out = np.empty((len(indices),) + frames[int(indices[0])].shape, np.uint8)
        rows = np.arange(len(indices))
    for j, i in zip(rows, indices):
        out[j] = frames[int(i)]
    return out


def _decode_size(info: VideoInfo, resize_short: int | None) -> tuple[int, int] | None:
    size = None if resize_short is None else resized_shape(info.height, info.width, resize_short)
    # already at the requested size: a no-op resize still costs time
    return None if size == (info.height, info.width) else size


def _read_with(path: str, idx: np.ndarray, resize_short: int | None, backend: str, num_threads: int,
               reader: PyAVReader | None = None) -> dict[int, np.ndarray]:
    """``{index: frame}`` for the frames ``idx`` of ``path`` with ``backend`` (``reader``: an open
    PyAV reader of ``path``)."""
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}")
    errors = []
    if backend in ("auto", "pyav"):
        own = reader is None
        if own:
            reader = PyAVReader(path, num_threads)  # open errors are raised as they are
        try:
            frames = reader.read(idx, _decode_size(reader.info, resize_short))
            missing = set(int(i) for i in idx) - set(frames)
            if missing:
                raise VideoReadError(path, f"could not decode frames {sorted(missing)[:5]}")
            return frames
        except VideoReadError as e:
            errors.append(f"pyav: {e.reason}")
        except Exception as e:  # av raises many error types on bad streams
            errors.append(f"pyav: {type(e).__name__}: {e}")
        finally:
            if own:
                reader.close()
        if backend == "pyav" or not _have_decord():
            raise VideoReadError(path, "cannot decode (" + "; ".join(errors) + ")")
    info = reader.info if reader is not None else probe_video(path)
    try:
        return _read_decord(path, idx, _decode_size(info, resize_short), num_threads)
    except VideoReadError as e:
        errors.append(f"decord: {e.reason}")
    except Exception as e:  # decord raises DECORDError / RuntimeError on bad streams
        errors.append(f"decord: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise VideoReadError(path, "cannot decode (" + "; ".join(errors) + ")")


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray,
    resize_short: int | None = None,
    backend: str = "auto",
    num_threads: int = 1,
) -> np.ndarray:
    """Decode the frames at ``indices`` (any order, repeats allowed) -> uint8 ``[T, H, W, 3]``.

    ``backend``: ``"pyav"`` (:class:`PyAVReader`: seeks only where a keyframe helps, skips
    unneeded non-reference frames, converts only the wanted frames), ``"decord"``, or ``"auto"``
    (PyAV, then decord if installed when PyAV fails on the file). With ``resize_short`` the short
    side is resized to it while decoding.
    """
    path = str(path)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("read_frames needs at least one index")
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}")
    if backend == "decord":
        info = probe_video(path)
        if idx.min() < 0 or idx.max() >= info.num_frames:
            raise VideoReadError(path, f"frame indices {int(idx.min())}..{int(idx.max())} outside the video's "
                                       f"{info.num_frames} frames")
        return _gather(path, idx, _read_with(path, idx, resize_short, backend, num_threads))
    with PyAVReader(path, num_threads) as reader:
        if idx.min() < 0 or idx.max() >= reader.info.num_frames:
            raise VideoReadError(path, f"frame indices {int(idx.min())}..{int(idx.max())} outside the video's "
                                       f"{reader.info.num_frames} frames")
        return _gather(path, idx, _read_with(path, idx, resize_short, backend, num_threads, reader))


# ----------------------------------------------------------------------------- plain layout


def _as_list(num_frames: int | Sequence[int]) -> list[int]:
    return [int(num_frames)] if isinstance(num_frames, (int, np.integer)) else [int(n) for n in num_frames]


def read_clips(
    path: str | os.PathLike,
    start_sec: float | None,
    end_sec: float | None,
    num_frames: Sequence[int],
    mode: str = "middle",
    resize_short: int | None = None,
    rng: np.random.Generator | None = None,
    backend: str = "auto",
    num_threads: int = 1,
) -> list[np.ndarray]:
    """Several clips of the same segment (e.g. 4 and 16 frames), decoded in one pass."""
    path = str(path)
    with _Source(path, backend, num_threads) as src:
        first, last = clip_frame_range(start_sec, end_sec, src.info.fps, src.info.num_frames, path)
        per_clip = [sample_segment_indices(first, last, n, mode, rng) for n in _as_list(num_frames)]
        idx = np.concatenate(per_clip)
        frames = _gather(path, idx, src.read(idx, resize_short))
    return _split(frames, per_clip)


class _Source:
    """One video file opened for reading: an open :class:`PyAVReader` (backends pyav/auto) or
    the probed metadata (decord opens the file itself)."""

    def __init__(self, path: str, backend: str, num_threads: int):
        if backend not in ("auto", "decord", "pyav"):
            raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}")
        self.path, self.backend, self.num_threads = path, backend, num_threads
        self.reader = None if backend == "decord" else PyAVReader(path, num_threads)
        self.info = probe_video(path) if self.reader is None else self.reader.info

    def read(self, idx: np.ndarray, resize_short: int | None) -> dict[int, np.ndarray]:
        return _read_with(self.path, idx, resize_short, self.backend, self.num_threads, self.reader)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def __enter__(self) -> "_Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_clip(
    path: str | os.PathLike,
    start_sec: float | None = None,
    end_sec: float | None = None,
    num_frames: int = 4,
    mode: str = "middle",
    resize_short: int | None = None,
    rng: np.random.Generator | None = None,
    backend: str = "auto",
    num_threads: int = 1,
) -> np.ndarray:
    """``num_frames`` frames of ``[start_sec, end_sec)`` by segment-based sampling -> uint8 ``[T, H, W, 3]``."""
    return read_clips(path, start_sec, end_sec, [num_frames], mode, resize_short, rng, backend, num_threads)[0]


def _split(frames: np.ndarray, per_clip: list[np.ndarray]) -> list[np.ndarray]:
    out, k = [], 0
    for ids in per_clip:
        out.append(frames[k:k + len(ids)])
        k += len(ids)
    return out


# ----------------------------------------------------------------------------- chunked layout


def chunk_path(root: str | os.PathLike, video_id: str, chunk: int, ext: str = "mp4") -> Path:
    """``{root}/{video_id}/{chunk:04d}.{ext}``."""
    return Path(root) / str(video_id) / f"{int(chunk):04d}.{ext}"


def read_chunked_clips(
    root: str | os.PathLike,
    video_id: str,
    start_sec: float,
    end_sec: float,
    num_frames: Sequence[int],
    chunk_seconds: float = 15,
    mode: str = "middle",
    resize_short: int | None = None,
    rng: np.random.Generator | None = None,
    backend: str = "auto",
    num_threads: int = 1,
    ext: str = "mp4",
) -> list[np.ndarray]:
    """Several clips of one segment from the chunked layout (see :func:`read_chunked_clip`)."""
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    start, end = float(start_sec), float(end_sec)
    where = Path(root) / str(video_id)
    if start < 0:
        raise VideoReadError(where, f"clip start {start:.3f}s is negative")
    if end <= start:
        raise VideoReadError(where, f"empty clip: end {end:.3f}s <= start {start:.3f}s")
    c_first = int(math.floor(start / chunk_seconds))
    c_last = max(c_first, int(math.ceil(end / chunk_seconds)) - 1)
    p0 = chunk_path(root, video_id, c_first, ext)
    if not p0.exists():
        have = sorted(p.name for p in where.glob(f"*.{ext}")) if where.is_dir() else []
        if not have:
            detail = "no chunks found for this video"
        elif p0.name > have[-1]:
            detail = f"outside the video, whose last chunk is {have[-1]}"
        else:
            detail = f"video has chunks {have[0]}..{have[-1]} but not this one"
        raise VideoReadError(p0, f"chunk missing: clip [{start:.3f}s, {end:.3f}s) starts in chunk {c_first} ({detail})")
    sources: dict[int, _Source] = {}
    try:
        sources[c_first] = _Source(str(p0), backend, num_threads)
        fps = sources[c_first].info.fps
        per_chunk = int(round(chunk_seconds * fps))
        # Frames available per chunk; a chunk after the video's last one ends the video there.
        for c in range(c_first + 1, c_last + 1):
            p = chunk_path(root, video_id, c, ext)
            if not p.exists():
                break
            sources[c] = _Source(str(p), backend, num_threads)
        lengths = {c: src.info.num_frames for c, src in sources.items()}
        total = max(lengths) * per_chunk + lengths[max(lengths)]
        first, last = clip_frame_range(start, end, fps, total, p0)
        per_clip = [sample_segment_indices(first, last, n, mode, rng) for n in _as_list(num_frames)]
        glob_idx = np.concatenate(per_clip)
        chunk_of = glob_idx // per_chunk
        local = glob_idx - chunk_of * per_chunk
        out = None
        for c in np.unique(chunk_of):
            c = int(c)
            sel = np.nonzero(chunk_of == c)[0]
            n_c = lengths[c]
            # A chunk a frame or two shorter than chunk_seconds (encoder rounding): use its last frame.
            loc = np.minimum(local[sel], n_c - 1)
            if (local[sel] - loc).max(initial=0) > max(2, int(0.1 * fps)) and c != max(lengths):
                raise VideoReadError(chunk_path(root, video_id, c, ext),
                                     f"chunk has {n_c} frames, expected about {per_chunk} ({chunk_seconds}s at {fps:g} fps)")
            got = sources[c].read(loc, resize_short)
            shape = next(iter(got.values())).shape
            if out is None:
                out = np.empty((len(glob_idx),) + shape, np.uint8)
            elif shape != out.shape[1:]:
                raise VideoReadError(where, f"chunks of one video decode to different frame sizes "
                                            f"{sorted({shape, out.shape[1:]})}")
            _gather(str(chunk_path(root, video_id, c, ext)), loc, got, out, sel)
    finally:
        for src in sources.values():
            src.close()
    return _split(out, per_clip)


def read_chunked_clip(
    root: str | os.PathLike,
    video_id: str,
    start_sec: float,
    end_sec: float,
    num_frames: int = 4,
    chunk_seconds: float = 15,
    mode: str = "middle",
    resize_short: int | None = None,
    rng: np.random.Generator | None = None,
    backend: str = "auto",
    num_threads: int = 1,
    ext: str = "mp4",
) -> np.ndarray:
    """A clip from ``{root}/{video_id}/{chunk:04d}.mp4`` chunks of ``chunk_seconds`` each.

    Times are in the whole video's timeline; frames on both sides of a chunk boundary are read
    from their own chunk. An end past the video's last chunk is clamped to the video's end.
    """
    return read_chunked_clips(root, video_id, start_sec, end_sec, [num_frames], chunk_seconds, mode,
                              resize_short, rng, backend, num_threads, ext)[0]


# ----------------------------------------------------------------------------- writing


CODECS = {"h264": "libx264", "av1": "libsvtav1", "mpeg4": "mpeg4"}  # VideoWriter codec -> FFmpeg encoder


class VideoWriter:
    """Streaming mp4 writer (PyAV): ``with VideoWriter(path, fps, h, w) as w: w.write(frames)``.

    Frames are uint8 RGB ``[H, W, 3]`` or ``[T, H, W, 3]``. The file appears at ``path`` only
    when the writer closes without error (temp file + rename).
    ``codec``: ``"h264"`` (libx264, yuv420p: H and W must be even), ``"av1"`` (SVT-AV1, ``crf``
    and ``gop_size`` apply) or ``"mpeg4"``.
    ``gop_size`` sets the keyframe interval (default: one per second); ``tune`` is passed to
    x264 (``"fastdecode"`` makes random access cheaper at a larger file size). ``bframes``: B-frames
    between reference frames (h264 only; 0 = none). ``b_pyramid="none"`` keeps every B-frame a
    non-reference frame, which :class:`PyAVReader` skips when it only decodes through to a later
    frame; ``"normal"`` is x264's default.
    """

    def __init__(self, path: str | os.PathLike, fps: float, height: int, width: int, codec: str = "h264",
                 gop_size: int | None = None, crf: int = 23, preset: str = "veryfast", tune: str | None = None,
                 bframes: int = 0, b_pyramid: str = "none"):
        if height % 2 or width % 2:
            raise ValueError(f"frame size {height}x{width} must be even for yuv420p encoding")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path, self.fps, self.height, self.width = Path(path), fps, height, width
        if bframes < 0 or (bframes and codec != "h264"):
            raise ValueError(f"bframes must be >= 0 and needs codec h264, got {bframes} with {codec!r}")
        if b_pyramid not in ("none", "strict", "normal"):
            raise ValueError(f"b_pyramid must be 'none', 'strict' or 'normal', got {b_pyramid!r}")
        self.codec, self.gop_size, self.crf, self.preset, self.tune = codec, gop_size, crf, preset, tune
        self.bframes, self.b_pyramid = int(bframes), b_pyramid
        self.count = 0
        self._container = None

    def __enter__(self) -> "VideoWriter":
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{self.path.suffix}")
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        rate = Fraction(self.fps).limit_denominator(1001)
        st = self._container.add_stream(CODECS[self.codec], rate=rate)
        st.width, st.height, st.pix_fmt = self.width, self.height, "yuv420p"
        st.codec_context.gop_size = int(self.gop_size or max(1, round(self.fps)))
        if self.codec == "h264":
            opts = {"crf": str(self.crf), "preset": self.preset, "bf": str(self.bframes)}
            if self.bframes:
                opts["b-pyramid"] = self.b_pyramid
            if self.tune:
                opts["tune"] = self.tune
            st.options = opts
        elif self.codec == "av1":
            st.options = {"crf": str(self.crf)}
        else:
            st.codec_context.bit_rate = max(200_000, self.height * self.width * int(round(self.fps)) // 4)
        self._stream = st
        return self

    def write(self, frames: np.ndarray) -> None:
        import av

        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be uint8 [T, {self.height}, {self.width}, 3], "
                             f"got {frames.dtype} {frames.shape}")
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
            self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.count == 0:
                    raise ValueError(f"{self.path}: no frames written")
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, codec: str = "h264",
                gop_size: int | None = None, crf: int = 23, tune: str | None = None, bframes: int = 0,
                b_pyramid: str = "none") -> Path:
    """Write uint8 RGB frames ``[T, H, W, 3]`` to an mp4 with PyAV; atomic (temp file + rename).

    See :class:`VideoWriter` for ``codec``, ``gop_size``, ``tune``, ``bframes`` and ``b_pyramid``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video needs uint8 [T, H, W, 3] frames, got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("write_video needs at least one frame")
    with VideoWriter(path, fps, frames.shape[1], frames.shape[2], codec, gop_size, crf, tune=tune, bframes=bframes,
                     b_pyramid=b_pyramid) as w:
        w.write(frames)
    return Path(path)
