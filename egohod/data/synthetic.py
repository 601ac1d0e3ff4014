"""A small synthetic video-text corpus in the pretraining layout, for tests and demos.

``python -m egohod.data.synthetic out=DIR videos=N [seconds=20 fps=8 height=96 width=128 ...]``
writes::

    DIR/videos/{video_id}/{chunk:04d}.mp4   chunked layout, chunk_seconds per file (PyAV)
    DIR/metadata.csv                        HOD CSV: video_id,start_second,end_second,text,dataset,uid

Each video shows one coloured shape on a textured background; the video is cut into segments
and in each segment the shape moves in one direction. Every segment is one CSV row whose
caption names colour, shape and direction (some rows as a list literal of paraphrases), so a
model can learn the captions from the pixels. Generation is deterministic given ``seed``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metadata import ClipRecord, write_hod_csv
from .video import chunk_path, write_video

__all__ = ["SyntheticConfig", "make_corpus", "render_video"]

COLOURS = {
    "red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (235, 220, 40),
    "magenta": (220, 50, 220), "cyan": (40, 220, 220), "white": (240, 240, 240), "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "cross", "ring")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class SyntheticConfig:
    out: str = "???"
    videos: int = 8
    seconds: float = 20.0
    fps: int = 8
    height: int = 96
    width: int = 128
    chunk_seconds: float = 15.0
    segment_seconds: float = 2.0  # not a divisor of chunk_seconds: some clips span two chunks
    seed: int = 0
    codec: str = "h264"

    def validate(self) -> None:
        if self.out in ("???", ""):
            raise ValueError("synthetic: set out=DIR (the output folder)")
        if self.videos <= 0 or self.seconds <= 0 or self.fps <= 0 or self.segment_seconds <= 0:
            raise ValueError(f"synthetic: videos, seconds, fps, segment_seconds must be positive, got {self}")
        if self.height % 2 or self.width % 2 or min(self.height, self.width) < 32:
            raise ValueError(f"synthetic: height/width must be even and >= 32, got {self.height}x{self.width}")
        if self.chunk_seconds * self.fps != int(self.chunk_seconds * self.fps):
            raise ValueError(f"synthetic: chunk_seconds*fps must be a whole number of frames, got "
                             f"{self.chunk_seconds}*{self.fps}")


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy * dy + dx * dx <= r * r
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "cross":
        return ((np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r)) | ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r))
    if shape == "ring":
        d2 = dy * dy + dx * dx
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    raise ValueError(f"unknown shape {shape!r}")


def render_video(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float, str]], str, str]:
    """Frames ``[T, H, W, 3]`` of one video, its segments ``(start, end, direction)``, colour and shape."""
    h, w, fps = cfg.height, cfg.width, cfg.fps
    n = int(round(cfg.seconds * fps))
    colour = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    r = min(h, w) * 0.14
    # a static, dim textured background, different per video
    base = rng.integers(20, 90, size=3)
    texture = rng.normal(0, 10, size=(h // 8 + 1, w // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
    background = np.clip(base[None, None, :] + texture, 0, 255)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    seg_frames = max(1, int(round(cfg.segment_seconds * fps)))
    margin = r + 2
    # pixels per frame: a segment covers ~45% of the short side, and at most what keeps a move
    # from the centre along the long side inside the frame (square frames), so from every
    # position at least one direction is feasible
    step = min(min(w, h) * 0.45, max(w, h) / 2 - margin) / seg_frames
    cy, cx = h / 2, w / 2
    frames = np.empty((n, h, w, 3), np.uint8)
    segments = []
    for s0 in range(0, n, seg_frames):
        s1 = min(n, s0 + seg_frames)
        travel = step * (s1 - s0)
        feasible = [d for d, (vx, vy) in DIRECTIONS.items()
                    if margin <= cx + vx * travel <= w - margin and margin <= cy + vy * travel <= h - margin]
        direction = str(rng.choice(feasible))
        vx, vy = DIRECTIONS[direction]
        for f in range(s0, s1):
            img = background.copy()
            img[_shape_mask(shape, yy, xx, cy, cx, r)] = COLOURS[colour]
            frames[f] = img.astype(np.uint8)
            cx, cy = cx + vx * step, cy + vy * step
        segments.append((s0 / fps, s1 / fps, direction))
    return frames, segments, colour, shape


def _captions(colour: str, shape: str, direction: str) -> tuple[str, ...]:
    return (f"#C C moves the {colour} {shape} {direction}",
            f"the {colour} {shape} slides {direction}",
            f"a {shape} in {colour} goes {direction}")


def make_corpus(cfg: SyntheticConfig, progress: bool = True) -> Path:
    """Write the corpus described by ``cfg``; returns the CSV path."""
    from tqdm import tqdm

    cfg.validate()
    out = Path(cfg.out)
    rng = np.random.default_rng(cfg.seed)
    per_chunk = int(cfg.chunk_seconds * cfg.fps)
    records = []
    for v in tqdm(range(cfg.videos), desc="synthetic videos", disable=not progress):
        vid = f"synth{v:05d}"
        frames, segments, colour, shape = render_video(cfg, rng)
        for c, s in enumerate(range(0, len(frames), per_chunk)):
            write_video(chunk_path(out / "videos", vid, c), frames[s:s + per_chunk], cfg.fps, codec=cfg.codec)
        for k, (a, b, direction) in enumerate(segments):
            caps = _captions(colour, shape, direction)
            texts = caps if k % 3 == 0 else caps[:1]  # every third row as a list literal
            records.append(ClipRecord(vid, a, b, texts, "synthetic", f"{vid}_{k:03d}"))
    return write_hod_csv(out / "metadata.csv", records)


def main(argv: list[str] | None = None) -> Path:
    from ..config import exit_on_config_error, load_config

    prog = "python -m egohod.data.synthetic"
    with exit_on_config_error(prog):
        cfg = load_config(SyntheticConfig, sys.argv[1:] if argv is None else argv, command=f"{prog} out=DIR videos=N")
    csv_path = make_corpus(cfg)
    print(f"wrote {cfg.videos} videos ({cfg.seconds:g}s, {cfg.fps} fps, {cfg.height}x{cfg.width}, "
          f"{cfg.chunk_seconds:g}-s chunks) under {Path(cfg.out) / 'videos'} and {csv_path}")
    return csv_path


if __name__ == "__main__":
    main()
