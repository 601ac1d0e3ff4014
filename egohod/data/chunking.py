"""Cut full-length videos into the chunked training layout ``{out}/{video_id}/{chunk:04d}.mp4``.

    python -m egohod.data.chunking src=/data/ego4d/v2/full_scale out=/data/ego4d_chunks \
        [chunk_seconds=15 short_side=320 fps=30 gop=8 bframes=3 b_pyramid=none tune=fastdecode crf=23]

Each source video is decoded once (PyAV), resampled to a constant ``fps`` by timestamps (the
source frame shown at each output instant; ``fps=0`` keeps the source's average rate), resized
to ``short_side`` (even sizes, aspect kept) and re-encoded with libx264 into chunks of exactly
``chunk_seconds * fps`` frames (the last one shorter), so chunk ``c`` starts at
``c * chunk_seconds`` seconds -- what :func:`egohod.data.video.read_chunked_clip` assumes.

Random access decides loading speed: a clip needs decoding from the keyframe before it, so a
short keyframe interval (``gop``), B-frames that are never references (``bframes``,
``b_pyramid=none``: the reader skips them on the way to a wanted frame) and x264's
``fastdecode`` tuning trade disk space for clips per second. The defaults are
:data:`egohod.data.prepare.TRAIN_LAYOUT` (measured by ``bench/dataloader.py --layout train``);
``python -m egohod.data.prepare`` re-encodes an already chunked corpus into it. A finished video gets a ``.done`` record; re-running
skips finished videos, so an interrupted run resumes. Failing sources are listed at the end and
make the command exit non-zero; they never stop the other videos.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_json
from .prepare import TRAIN_LAYOUT
from .video import VideoReadError, VideoWriter, open_video_stream, chunk_path, resized_shape

__all__ = ["ChunkConfig", "chunk_video", "main"]

VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".webm", ".avi")


@dataclass
class ChunkConfig:
    src: str = "???"  # a video file or a folder of videos (video_id = file name without extension)
    out: str = "???"
    chunk_seconds: float = 15.0
    short_side: int = 320  # 0 keeps the source size
    fps: float = 0.0  # 0 keeps the source's average frame rate
    gop: int = TRAIN_LAYOUT.gop  # keyframe interval in frames
    bframes: int = TRAIN_LAYOUT.bframes
    b_pyramid: str = TRAIN_LAYOUT.b_pyramid  # "none": B-frames are never references
    tune: str = TRAIN_LAYOUT.tune  # x264 tune; "" for none
    crf: int = TRAIN_LAYOUT.crf
    overwrite: bool = False


def _even(x: int) -> int:
    return max(2, x - (x % 2))


def chunk_video(src: str | os.PathLike, out_root: str | os.PathLike, video_id: str, cfg: ChunkConfig) -> dict:
    """Chunk one video; returns its ``.done`` record (frames, fps, chunks, size)."""
    src = str(src)
    container, stream = open_video_stream(src)
    with container:
        src_rate = float(stream.average_rate or stream.guessed_rate or 0)
        fps = float(cfg.fps) or src_rate
        if fps <= 0:
            raise VideoReadError(src, "no frame rate in the stream; pass fps=")
        per_chunk = int(round(cfg.chunk_seconds * fps))
        if abs(per_chunk - cfg.chunk_seconds * fps) > 1e-6:
            raise ValueError(f"chunk_seconds * fps = {cfg.chunk_seconds} * {fps} is not a whole number of frames")
        h0, w0 = stream.codec_context.height, stream.codec_context.width
        h, w = resized_shape(h0, w0, cfg.short_side or None)
        h, w = _even(h), _even(w)
        writer = None
        j = 0  # output frame index
        t0 = None
        prev = prev_t = None
        src_dt = 1.0 / src_rate if src_rate else 1.0 / fps

        def emit(frame: np.ndarray) -> None:
            nonlocal writer, j
            c = j // per_chunk
            if j % per_chunk == 0:
                if writer is not None:
                    writer.__exit__(None, None, None)
                writer = VideoWriter(chunk_path(out_root, video_id, c), fps, h, w, gop_size=cfg.gop, crf=cfg.crf,
                                     tune=cfg.tune or None, bframes=cfg.bframes,
                                     b_pyramid=cfg.b_pyramid).__enter__()
            writer.write(frame)
            j += 1

        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise VideoReadError(src, "decoded frame without timestamp")
                t = float(frame.pts * stream.time_base)
                t0 = t if t0 is None else t0
                t -= t0
                # copy: PyAV reuses the reformatter's output buffer for the next frame
                arr = np.array(frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray())
                while prev is not None and j / fps < t - 1e-4:
                    emit(prev)
                prev, prev_t = arr, t
            if prev is None:
                raise VideoReadError(src, "no frames decoded")
            while j / fps < prev_t + src_dt - 1e-4:
                emit(prev)
            writer.__exit__(None, None, None)
            writer = None
        except VideoReadError:
            raise
        except Exception as e:
            raise VideoReadError(src, f"decoding failed after {j} output frames ({type(e).__name__}: {e})") from None
        finally:
            if writer is not None:  # failed midway: drop the partial chunk
                writer.__exit__(RuntimeError, None, None)
    record = {"src": src, "frames": j, "fps": fps, "chunks": (j + per_chunk - 1) // per_chunk,
              "chunk_seconds": cfg.chunk_seconds, "height": h, "width": w, "gop": cfg.gop, "bframes": cfg.bframes,
              "b_pyramid": cfg.b_pyramid, "tune": cfg.tune}
    atomic_write_json(Path(out_root) / video_id / ".done", record, indent=None)
    return record


def _sources(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"chunking: src {src} is neither a video file nor a folder")
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in VIDEO_EXTS)
    if not files:
        raise FileNotFoundError(f"chunking: no videos ({', '.join(VIDEO_EXTS)}) in {src}")
    return files


def run(cfg: ChunkConfig, progress: bool = True) -> tuple[list[dict], list[tuple[str, str]]]:
    from tqdm import tqdm

    out = Path(cfg.out)
    done, failed = [], []
    files = _sources(Path(cfg.src))
    for f in tqdm(files, desc="chunking", unit="video", disable=not progress):
        vid = f.stem
        marker = out / vid / ".done"
        if marker.exists() and not cfg.overwrite:
            done.append(json.loads(marker.read_text()))
            continue
        try:
            done.append(chunk_video(f, out, vid, cfg))
        except VideoReadError as e:
            failed.append((e.path, e.reason))
            print(f"chunking: FAILED {e.path}: {e.reason}", file=sys.stderr)
    return done, failed


def main(argv: list[str] | None = None) -> int:
    from ..config import exit_on_config_error, load_config

    prog = "python -m egohod.data.chunking"
    with exit_on_config_error(prog):
        cfg = load_config(ChunkConfig, sys.argv[1:] if argv is None else argv, command=f"{prog} src=VIDEOS out=DIR")
    done, failed = run(cfg)
    frames = sum(r["frames"] for r in done)
    print(f"{len(done)} videos chunked ({sum(r['chunks'] for r in done)} chunks, {frames} frames) under {cfg.out}; "
          f"{len(failed)} failed")
    for path, reason in failed:
        print(f"  {path}: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
