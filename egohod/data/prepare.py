"""Re-encode a video corpus into the layout the training loader reads fastest.

    python -m egohod.data.prepare src=/data/ego4d_chunks out=/data/ego4d_chunks_train [workers=8]
        [short_side=320 gop=8 bframes=3 b_pyramid=none tune=fastdecode crf=23 overwrite=false]

Every ``*.mp4`` under ``src`` (the chunked layout ``{video_id}/{chunk:04d}.mp4``, or plain
``{video_id}.mp4``) is re-encoded one-to-one to the same relative path under ``out``: every
frame kept (same count, same rate, so the chunk timeline is unchanged), the short side resized
to ``short_side`` (even sizes, aspect kept; never upscaled), libx264 with the keyframe interval,
B-frames and tune of :data:`TRAIN_LAYOUT`. Why these settings: a random clip costs decoding
from the keyframe before each sampled frame; a short keyframe interval bounds that, and
B-frames that no other frame references are skipped by :class:`egohod.data.video.PyAVReader`
unless they are wanted, so only every ``bframes + 1``-th frame is decoded on the way.
``bench/dataloader.py --layout train`` measures it; ``pretrain/README.md`` has the numbers.

Each output file is written to a temporary name and renamed when complete, so an interrupted
run resumes where it stopped (finished files are skipped). ``out/layout.json`` records the
settings; a second run with other settings on the same ``out`` is refused unless
``overwrite=true``. Files that fail are listed at the end and make the command exit non-zero;
they never stop the others.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError, exit_on_config_error, load_config
from ..fileio import atomic_write_json
from .video import VideoReadError, VideoWriter, open_video_stream, resized_shape

__all__ = ["EncodeLayout", "PrepareConfig", "TRAIN_LAYOUT", "main", "prepare_file", "run"]


@dataclass(frozen=True)
class EncodeLayout:
    """How training chunks are encoded (libx264, yuv420p)."""

    short_side: int = 320
    gop: int = 8  # keyframe interval in frames
    bframes: int = 3  # B-frames between reference frames
    b_pyramid: str = "none"  # "none": B-frames are never references, so the reader can skip them
    tune: str = "fastdecode"  # no CABAC / deblocking: cheaper decoding for ~+30% size
    crf: int = 23


#: The layout ``bench/dataloader.py --layout train`` measures and :mod:`egohod.data.chunking` writes.
TRAIN_LAYOUT = EncodeLayout()


@dataclass
class PrepareConfig:
    src: str = "???"  # a corpus folder (chunked or plain layout)
    out: str = "???"
    short_side: int = TRAIN_LAYOUT.short_side  # 0 keeps the source size
    gop: int = TRAIN_LAYOUT.gop
    bframes: int = TRAIN_LAYOUT.bframes
    b_pyramid: str = TRAIN_LAYOUT.b_pyramid
    tune: str = TRAIN_LAYOUT.tune  # "" for none
    crf: int = TRAIN_LAYOUT.crf
    workers: int = 1  # processes encoding files in parallel
    overwrite: bool = False

    def layout(self) -> dict:
        return {k: getattr(self, k) for k in ("short_side", "gop", "bframes", "b_pyramid", "tune", "crf")}


def _even(x: int) -> int:
    return max(2, x - (x % 2))


def prepare_file(src: str | os.PathLike, dst: str | os.PathLike, cfg: PrepareConfig) -> dict:
    """Re-encode one file (all frames, same rate); returns ``{"frames", "height", "width"}``."""
    src, dst = str(src), Path(dst)
    container, stream = open_video_stream(src)
    with container:
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise VideoReadError(src, "video stream has no frame rate")
        h0, w0 = stream.codec_context.height, stream.codec_context.width
        short = cfg.short_side if cfg.short_side and cfg.short_side < min(h0, w0) else None
        h, w = resized_shape(h0, w0, short)
        h, w = _even(h), _even(w)
        expected = int(stream.frames or 0)
        n = 0
        try:
            with VideoWriter(dst, float(rate), h, w, gop_size=cfg.gop, crf=cfg.crf, tune=cfg.tune or None,
                             bframes=cfg.bframes, b_pyramid=cfg.b_pyramid) as writer:
                for frame in container.decode(stream):
                    rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
                    writer.write(np.ascontiguousarray(rgb))
                    n += 1
                if expected and n != expected:
                    raise VideoReadError(src, f"decoded {n} frames but the container lists {expected}")
        except VideoReadError:
            raise
        except Exception as e:
            raise VideoReadError(src, f"re-encoding failed after {n} frames ({type(e).__name__}: {e})") from None
    return {"frames": n, "height": h, "width": w}


def _sources(src: Path) -> list[Path]:
    if not src.is_dir():
        raise FileNotFoundError(f"prepare: src {src} is not a folder")
    files = sorted(p for p in src.rglob("*.mp4") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"prepare: no .mp4 files under {src}")
    return files


def _check_layout(cfg: PrepareConfig, out: Path) -> None:
    record = out / "layout.json"
    want = cfg.layout()
    if record.exists():
        have = json.loads(record.read_text())
        if have != want and not cfg.overwrite:
            raise ConfigError(f"prepare: {out} holds files encoded with {have}, not {want}; "
                              f"use another out= or overwrite=true")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, want, indent=1)


def _one(job: tuple[str, str, PrepareConfig]) -> tuple[str, str | None]:
    src, dst, cfg = job
    try:
        prepare_file(src, dst, cfg)
        return src, None
    except VideoReadError as e:
        return e.path, e.reason


def run(cfg: PrepareConfig, progress: bool = True) -> tuple[int, int, list[tuple[str, str]]]:
    """``(encoded, skipped, failed)``; ``failed`` lists ``(path, reason)``."""
    from tqdm import tqdm

    src, out = Path(cfg.src), Path(cfg.out)
    if src.resolve() == out.resolve():
        raise ConfigError("prepare: out= must differ from src=")
    files = _sources(src)
    _check_layout(cfg, out)
    jobs, skipped = [], 0
    for f in files:
        dst = out / f.relative_to(src)
        if dst.exists() and not cfg.overwrite:
            skipped += 1
            continue
        jobs.append((str(f), str(dst), cfg))
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(jobs), desc="prepare", unit="file", disable=not progress)
    if cfg.workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(cfg.workers) as pool:
            results = pool.imap_unordered(_one, jobs)
            for path, reason in results:
                bar.update()
                if reason is not None:
                    failed.append((path, reason))
    else:
        for job in jobs:
            path, reason = _one(job)
            bar.update()
            if reason is not None:
                failed.append((path, reason))
    bar.close()
    for path, reason in failed:
        print(f"prepare: FAILED {path}: {reason}", file=sys.stderr)
    return len(jobs) - len(failed), skipped, failed


def load_prepare_config(argv: list[str]) -> PrepareConfig:
    cfg = load_config(PrepareConfig, argv, command="python -m egohod.data.prepare src=CORPUS out=DIR")
    if cfg.b_pyramid not in ("none", "strict", "normal"):
        raise ConfigError(f"b_pyramid must be none, strict or normal, got {cfg.b_pyramid!r}")
    if cfg.gop < 1 or cfg.bframes < 0 or cfg.workers < 1 or cfg.short_side < 0:
        raise ConfigError(f"need gop >= 1, bframes >= 0, workers >= 1, short_side >= 0; got "
                          f"gop={cfg.gop} bframes={cfg.bframes} workers={cfg.workers} short_side={cfg.short_side}")
    return cfg


def main(argv: list[str] | None = None) -> int:
    with exit_on_config_error("python -m egohod.data.prepare"):
        cfg = load_prepare_config(sys.argv[1:] if argv is None else argv)
        done, skipped, failed = run(cfg)
    print(f"{done} files encoded, {skipped} already done, {len(failed)} failed -> {cfg.out} "
          f"(layout {json.dumps(cfg.layout())})")
    for path, reason in failed:
        print(f"  {path}: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
