"""A tiny synthetic egocentric corpus for the HOD tests: skin-coloured 'hands' moving over a
blue-grey table, a red block carried by the right hand, a static green block, 2-s chunks at
10 fps (chunked layout), plus broken inputs (an undecodable chunk, a clip past the video end,
a missing video)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

FPS = 10
CHUNK = 2.0
H, W = 96, 160
SKIN = (224, 172, 140)
BG = (70, 90, 130)


def draw_frame(t: float, motion: str) -> np.ndarray:
    img = np.empty((H, W, 3), np.uint8)
    img[:] = BG
    img[70:86, 8:28] = (40, 160, 60)  # static green block (bottom-left)
    yy, xx = np.mgrid[0:H, 0:W]
    if motion == "right":  # right hand carries the red block from left to right
        cx, cy = 84 + 10 * t, 50
        img[(xx - cx) ** 2 / 13.0 ** 2 + (yy - cy) ** 2 / 10.0 ** 2 <= 1] = SKIN
        x0 = int(round(cx + 13))
        img[int(cy) - 8:int(cy) + 8, x0:x0 + 14] = (210, 30, 30)
    else:  # a hand moving up, touching nothing
        cx, cy = 40, 80 - 12 * t
        img[(xx - cx) ** 2 / 12.0 ** 2 + (yy - cy) ** 2 / 10.0 ** 2 <= 1] = SKIN
    return img


def write_chunked(root: Path, video_id: str, seconds: float, motion: str) -> None:
    from egohod.data.video import write_video

    n = int(round(seconds * FPS))
    frames = np.stack([draw_frame(i / FPS, motion) for i in range(n)])
    per = int(CHUNK * FPS)
    for c in range(0, (n + per - 1) // per):
        write_video(root / video_id / f"{c:04d}.mp4", frames[c * per:(c + 1) * per], FPS, crf=12)


@pytest.fixture(scope="session")
def hod_corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hod_corpus")
    videos = root / "videos"
    write_chunked(videos, "vidA", 4.0, "right")
    write_chunked(videos, "vidB", 2.0, "up")
    (videos / "vidC").mkdir(parents=True)
    (videos / "vidC" / "0000.mp4").write_bytes(b"this is not an mp4 file" * 10)
    rows = [
        ("vidA", 0.2, 1.8, "#C C carries the red block", "a0"),
        ("vidA", 1.0, 3.0, "#C C moves the block across the table", "a1"),  # spans two chunks
        ("vidB", 0.1, 1.9, "#C C raises the hand", "b0"),
        ("vidA", 5.5, 7.5, "#C C does something later", "a2"),  # beyond the end (4 s)
        ("vidC", 0.0, 1.0, "#C C looks around", "c0"),  # undecodable
        ("vidD", 0.0, 1.0, "#C C opens the door", "d0"),  # missing video
        ("vidB", 0.5, 1.5, "#C C waves", "b1"),
        ("vidA", 3.0, 5.5, "#C C puts the block down", "a3"),  # overruns the end by 1.5 s
    ]
    clips = root / "clips.csv"
    with clips.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "start_second", "end_second", "text", "dataset", "uid"])
        for v, s, e, t, u in rows:
            w.writerow([v, s, e, t, "synthetic", u])
    return {"root": root, "videos": videos, "clips": clips, "rows": rows}


def run_args(corpus: dict, out: Path, *extra: str) -> list[str]:
    return [f"clips={corpus['clips']}", f"videos={corpus['videos']}", f"out={out}", f"chunk_seconds={CHUNK}",
            "sampling.num_frames=4", "sampling.temporal_factor=2", "batch_size=3", "flush_every=2",
            "progress=false", *extra]
