"""Chunking full videos into the training layout: exact chunk lengths, timestamps preserved,
frame-rate conversion, resume via .done records, failing sources reported."""
import json

import numpy as np
import pytest

from egohod.data.chunking import ChunkConfig, chunk_video, run
from egohod.data.video import probe_video, read_chunked_clip, write_video


def _ids(clip):
    # grey level 8*i; two lossy encodes shift levels by a few units, far below the step of 8
    return np.round(clip[:, 6:-6, 6:-6].astype(float).mean(axis=(1, 2, 3)) / 8).astype(int).tolist()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    fr = np.zeros((30, 48, 64, 3), np.uint8)
    for i in range(30):
        fr[i] = 8 * i + 4
    write_video(d / "vidA.mp4", fr, 10)  # 3 s
    return d


def test_chunks_have_exact_lengths_and_keep_the_timeline(source, tmp_path):
    rec = chunk_video(source / "vidA.mp4", tmp_path, "vidA", ChunkConfig(chunk_seconds=1.2, short_side=40, gop=5))
    assert (rec["frames"], rec["chunks"], rec["height"], rec["width"]) == (30, 3, 40, 52)
    assert [probe_video(tmp_path / "vidA" / f"{c:04d}.mp4").num_frames for c in range(3)] == [12, 12, 6]
    clip = read_chunked_clip(tmp_path, "vidA", 0.7, 1.7, num_frames=10, chunk_seconds=1.2)
    assert _ids(clip) == list(range(7, 17))
    assert json.loads((tmp_path / "vidA" / ".done").read_text())["chunks"] == 3


def test_frame_rate_conversion_by_timestamps(source, tmp_path):
    rec = chunk_video(source / "vidA.mp4", tmp_path, "vidA", ChunkConfig(chunk_seconds=1, short_side=0, fps=5))
    assert rec["frames"] == 15 and rec["fps"] == 5 and rec["chunks"] == 3
    clip = read_chunked_clip(tmp_path, "vidA", 0.6, 2.6, num_frames=10, chunk_seconds=1)
    assert _ids(clip) == list(range(6, 26, 2))


def test_run_resumes_and_reports_failures(source, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.mp4").write_bytes((source / "vidA.mp4").read_bytes())
    (src / "broken.mp4").write_bytes(b"junk" * 100)
    cfg = ChunkConfig(src=str(src), out=str(tmp_path / "out"), chunk_seconds=1, short_side=32)
    done, failed = run(cfg, progress=False)
    assert [r["chunks"] for r in done] == [3] and failed[0][0].endswith("broken.mp4") and "cannot open" in failed[0][1]
    stamp = (tmp_path / "out" / "a" / "0000.mp4").stat().st_mtime_ns
    done2, _ = run(cfg, progress=False)
    assert done2 == done and (tmp_path / "out" / "a" / "0000.mp4").stat().st_mtime_ns == stamp  # skipped
    from egohod.data.chunking import main

    rc = main([f"src={src}", f"out={tmp_path / 'out2'}", "chunk_seconds=1", "short_side=32"])  # the CLI, in-process
    out = capsys.readouterr().out
    assert rc == 1 and "1 videos chunked (3 chunks" in out and "broken.mp4" in out
