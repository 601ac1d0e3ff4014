"""Reading clips out of videos: one file per video, or 15-second chunks per video.

Frames are picked by *segment-based sampling*: the clip ``[start_sec, end_sec)`` is cut into
``num_frames`` equal segments and one frame is taken from each -- the segment's middle frame
in evaluation (``mode="middle"``), a uniformly random frame in training (``mode="random"``).

Two layouts are supported:

* plain: one file per video, read with :func:`read_clip`;
* chunked: ``{root}/{video_id}/{chunk:04d}.mp4``, chunk ``c`` holding seconds
  ``[c * chunk_seconds, (c + 1) * chunk_seconds)`` of the video (Ego4D as EgoHOD stores it),
  read with :func:`read_chunked_clip`; a clip may span two (or more) chunks.

Decoding uses decord (resizing at decode time) when it is installed, PyAV otherwise or when
decord cannot read a file. Every failure -- missing file, undecodable file, clip outside the
video -- raises :class:`VideoReadError` naming the path and the reason.

All functions return ``uint8`` arrays shaped ``[T, H, W, 3]`` (RGB).
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
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
    "write_video",
]

SAMPLING_MODES = ("middle", "random")


class VideoReadError(RuntimeError):
    """A clip could not be read. ``path`` and ``reason`` say which file and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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


@functools.lru_cache(maxsize=4096)
def _probe_cached(key: tuple[str, int, int]) -> VideoInfo:
    path = key[0]
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream in file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate:
                raise VideoReadError(path, "video stream has no frame rate")
            fps = float(rate)
            n = int(stream.frames or 0)
            if n <= 0:
                # Containers without a frame count: count packets of the stream (no decoding).
                n = sum(1 for p in container.demux(stream) if p.size > 0)
            width, height = stream.codec_context.width, stream.codec_context.height
    except VideoReadError:
        raise
    except Exception as e:  # av raises many error types (InvalidDataError, EOFError, ...)
        raise VideoReadError(path, f"cannot open video ({type(e).__name__}: {e})") from None
    if n <= 0 or width <= 0 or height <= 0:
        raise VideoReadError(path, f"video stream is empty (frames={n}, size={width}x{height})")
    return VideoInfo(num_frames=n, fps=fps, width=width, height=height)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate and size of a video (container metadata, cached per file)."""
    return _probe_cached(_file_key(str(path)))


def video_duration(path: str | os.PathLike) -> float:
    """Duration in seconds: number of frames / frame rate."""
    return probe_video(path).duration


def _read_decord(path: str, indices: np.ndarray, size: tuple[int, int] | None, num_threads: int) -> np.ndarray:
    import decord

    kwargs = {"num_threads": num_threads}
    if size is not None:
        kwargs["height"], kwargs["width"] = size
    vr = decord.VideoReader(path, **kwargs)
    n = len(vr)
    if indices.max() >= n:
        raise VideoReadError(path, f"frame {int(indices.max())} requested but decord sees {n} frames")
    uniq, inverse = np.unique(indices, return_inverse=True)
    frames = vr.get_batch(uniq.tolist()).asnumpy()
    return frames[inverse]


def _read_pyav(path: str, indices: np.ndarray, size: tuple[int, int] | None, fps: float) -> np.ndarray:
    import av

    wanted = set(int(i) for i in indices)
    first, last = min(wanted), max(wanted)
    got: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base)
        t0 = stream.start_time or 0
        if first > 0:
            container.seek(int(t0 + (first / fps) / tb), stream=stream, backward=True, any_frame=False)
        count = None  # frame counter used when packets carry no timestamps
        for frame in container.decode(stream):
            if frame.pts is not None:
                idx = int(round((frame.pts - t0) * tb * fps))
            else:
                count = 0 if count is None else count + 1
                idx = count
            if idx in wanted and idx not in got:
                if size is not None:
                    frame = frame.reformat(width=size[1], height=size[0], format="rgb24")
                got[idx] = np.array(frame.to_ndarray(format="rgb24"))  # copy: PyAV reuses reformat buffers
            if idx >= last:
                break
    missing = sorted(wanted - set(got))
    if missing:
        raise VideoReadError(path, f"could not decode frames {missing[:5]}{'...' if len(missing) > 5 else ''}")
    return np.stack([got[int(i)] for i in indices])


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray,
    resize_short: int | None = None,
    backend: str = "auto",
    num_threads: int = 1,
) -> np.ndarray:
    """Decode the frames at ``indices`` (any order, repeats allowed) -> uint8 ``[T, H, W, 3]``.

    ``backend``: ``"decord"``, ``"pyav"`` or ``"auto"`` (decord if installed; PyAV if decord
    fails on the file). With ``resize_short`` the short side is resized to it while decoding.
    """
    path = str(path)
    info = probe_video(path)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("read_frames needs at least one index")
    if idx.min() < 0 or idx.max() >= info.num_frames:
        raise VideoReadError(path, f"frame indices {int(idx.min())}..{int(idx.max())} outside the video's "
                                   f"{info.num_frames} frames")
    size = None if resize_short is None else resized_shape(info.height, info.width, resize_short)
    if size == (info.height, info.width):
        size = None  # already at the requested size: a no-op resize filter still costs ~40% of the decode
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}")
    errors = []
    if backend in ("auto", "decord") and (backend == "decord" or _have_decord()):
        try:
            return _read_decord(path, idx, size, num_threads)
        except VideoReadError as e:
            errors.append(f"decord: {e.reason}")
        except Exception as e:  # decord raises DECORDError / RuntimeError on bad streams
            errors.append(f"decord: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        if backend == "decord":
            raise VideoReadError(path, "; ".join(errors))
    try:
        return _read_pyav(path, idx, size, info.fps)
    except VideoReadError as e:
        errors.append(f"pyav: {e.reason}")
    except Exception as e:
        errors.append(f"pyav: {type(e).__name__}: {e}")
    raise VideoReadError(path, "cannot decode (" + "; ".join(errors) + ")")


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
    info = probe_video(path)
    first, last = clip_frame_range(start_sec, end_sec, info.fps, info.num_frames, path)
    per_clip = [sample_segment_indices(first, last, n, mode, rng) for n in _as_list(num_frames)]
    frames = read_frames(path, np.concatenate(per_clip), resize_short, backend, num_threads)
    return _split(frames, per_clip)


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
    info0 = probe_video(p0)
    fps = info0.fps
    per_chunk = int(round(chunk_seconds * fps))
    # Frames available per chunk; a chunk after the video's last one ends the video there.
    lengths: dict[int, int] = {c_first: info0.num_frames}
    for c in range(c_first + 1, c_last + 1):
        p = chunk_path(root, video_id, c, ext)
        if not p.exists():
            break
        lengths[c] = probe_video(p).num_frames
    total = max(lengths) * per_chunk + lengths[max(lengths)]
    first, last = clip_frame_range(start, end, fps, total, p0)
    per_clip = [sample_segment_indices(first, last, n, mode, rng) for n in _as_list(num_frames)]
    glob_idx = np.concatenate(per_clip)
    chunk_of = glob_idx // per_chunk
    local = glob_idx - chunk_of * per_chunk
    frames: list[np.ndarray | None] = [None] * len(glob_idx)
    for c in np.unique(chunk_of):
        c = int(c)
        sel = np.nonzero(chunk_of == c)[0]
        n_c = lengths[c]
        # A chunk a frame or two shorter than chunk_seconds (encoder rounding): use its last frame.
        loc = np.minimum(local[sel], n_c - 1)
        if (local[sel] - loc).max(initial=0) > max(2, int(0.1 * fps)) and c != max(lengths):
            raise VideoReadError(chunk_path(root, video_id, c, ext),
                                 f"chunk has {n_c} frames, expected about {per_chunk} ({chunk_seconds}s at {fps:g} fps)")
        got = read_frames(chunk_path(root, video_id, c, ext), loc, resize_short, backend, num_threads)
        for j, i in enumerate(sel):
            frames[i] = got[j]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoReadError(where, f"chunks of one video decode to different frame sizes {sorted(shapes)}")
    return _split(np.stack(frames), per_clip)


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


class VideoWriter:
    """Streaming mp4 writer (PyAV): ``with VideoWriter(path, fps, h, w) as w: w.write(frames)``.

    Frames are uint8 RGB ``[H, W, 3]`` or ``[T, H, W, 3]``. The file appears at ``path`` only
    when the writer closes without error (temp file + rename).
    ``codec``: ``"h264"`` (libx264, yuv420p: H and W must be even) or ``"mpeg4"``.
    ``gop_size`` sets the keyframe interval (default: one per second); ``tune`` is passed to
    x264 (``"fastdecode"`` makes random access cheaper at a larger file size).
    """

    def __init__(self, path: str | os.PathLike, fps: float, height: int, width: int, codec: str = "h264",
                 gop_size: int | None = None, crf: int = 23, preset: str = "veryfast", tune: str | None = None):
        if height % 2 or width % 2:
            raise ValueError(f"frame size {height}x{width} must be even for yuv420p encoding")
        if codec not in ("h264", "mpeg4"):
            raise ValueError(f"codec must be 'h264' or 'mpeg4', got {codec!r}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path, self.fps, self.height, self.width = Path(path), fps, height, width
        self.codec, self.gop_size, self.crf, self.preset, self.tune = codec, gop_size, crf, preset, tune
        self.count = 0
        self._container = None

    def __enter__(self) -> "VideoWriter":
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{self.path.suffix}")
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        rate = Fraction(self.fps).limit_denominator(1001)
        st = self._container.add_stream("libx264" if self.codec == "h264" else "mpeg4", rate=rate)
        st.width, st.height, st.pix_fmt = self.width, self.height, "yuv420p"
        st.codec_context.gop_size = int(self.gop_size or max(1, round(self.fps)))
        if self.codec == "h264":
            opts = {"crf": str(self.crf), "preset": self.preset, "bf": "0"}
            if self.tune:
                opts["tune"] = self.tune
            st.options = opts
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
                gop_size: int | None = None, crf: int = 23, tune: str | None = None) -> Path:
    """Write uint8 RGB frames ``[T, H, W, 3]`` to an mp4 with PyAV; atomic (temp file + rename).

    See :class:`VideoWriter` for ``codec``, ``gop_size`` and ``tune``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video needs uint8 [T, H, W, 3] frames, got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("write_video needs at least one frame")
    with VideoWriter(path, fps, frames.shape[1], frames.shape[2], codec, gop_size, crf, tune=tune) as w:
        w.write(frames)
    return Path(path)
