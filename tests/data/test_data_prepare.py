"""Re-encoding a chunked corpus into the training layout: same frames and timeline, requested
size and GOP structure, resumable, settings recorded and enforced, failures reported."""
import json

import numpy as np
import pytest

from egohod.config import ConfigError
from egohod.data.prepare import TRAIN_LAYOUT, PrepareConfig, main, run
from egohod.data.video import PyAVReader, chunk_path, probe_video, read_chunked_clip, write_video


def _ids(clip):
    # grey level 6 * i + 4 on flat frames; two lossy encodes move levels by a unit or two, below half the step
    return np.round((clip[:, 6:-6, 6:-6].astype(float).mean(axis=(1, 2, 3)) - 4) / 6).astype(int).tolist()


@pytest.fixture()
def corpus(tmp_path):
    src = tmp_path / "src"
    for vid in ("a", "b"):
        for c, first in enumerate((0, 20)):
            fr = np.zeros((20, 64, 96, 3), np.uint8)
            for k in range(20):
                fr[k] = 6 * (first + k) + 4
            write_video(chunk_path(src, vid, c), fr, 10, gop_size=250)  # 2-s chunks
    return src


def _cfg(src, out, **kw):
    base = dict(src=str(src), out=str(out), short_side=48, gop=4, bframes=3, crf=12)
    base.update(kw)
    return PrepareConfig(**base)


def test_prepared_chunks_keep_frames_and_timeline(corpus, tmp_path):
    out = tmp_path / "out"
    done, skipped, failed = run(_cfg(corpus, out), progress=False)
    assert (done, skipped, failed) == (4, 0, [])
    for vid in ("a", "b"):
        for c in (0, 1):
            info = probe_video(chunk_path(out, vid, c))
            assert (info.num_frames, info.fps, info.height, info.width) == (20, 10, 48, 72)
    a = read_chunked_clip(corpus, "a", 1.2, 2.8, num_frames=8, chunk_seconds=2)
    b = read_chunked_clip(out, "a", 1.2, 2.8, num_frames=8, chunk_seconds=2)
    assert _ids(a) == [13, 15, 17, 19, 21, 23, 25, 27]
    # the same frames after resizing and a second lossy encode: within a few grey levels (step 6)
    levels = [clip[:, 6:-6, 6:-6].astype(float).mean(axis=(1, 2, 3)) for clip in (a, b)]
    assert np.abs(levels[0] - levels[1]).max() < 4
    with PyAVReader(chunk_path(out, "a", 0)) as r:
        keys = [i for i in range(20) if r._entries[i].is_keyframe]
        pts = [p.pts for p in r.container.demux(r.stream) if p.pts is not None]
    assert keys[0] == 0 and np.diff(keys + [20]).max() <= 4  # gop=4 (x264 may close a GOP earlier)
    assert pts != sorted(pts)  # B-frames: decode order differs from display order
    assert json.loads((out / "layout.json").read_text())["bframes"] == 3


def test_resume_skips_finished_files_and_refuses_other_settings(corpus, tmp_path):
    out = tmp_path / "out"
    run(_cfg(corpus, out), progress=False)
    (out / "b" / "0001.mp4").unlink()  # as if interrupted before the last file
    stamp = chunk_path(out, "a", 0).stat().st_mtime_ns
    done, skipped, failed = run(_cfg(corpus, out), progress=False)
    assert (done, skipped, failed) == (1, 3, []) and chunk_path(out, "a", 0).stat().st_mtime_ns == stamp
    assert not list(out.rglob(".*tmp*"))
    with pytest.raises(ConfigError, match="gop"):
        run(_cfg(corpus, out, gop=30), progress=False)


def test_cli_reports_failures_and_exits_non_zero(corpus, tmp_path, capsys):
    (corpus / "c").mkdir()
    (corpus / "c" / "0000.mp4").write_bytes(b"junk" * 100)
    rc = main([f"src={corpus}", f"out={tmp_path / 'out'}", "short_side=48", "crf=12", "workers=2"])
    out = capsys.readouterr()
    assert rc == 1 and "4 files encoded, 0 already done, 1 failed" in out.out
    assert "c/0000.mp4" in out.out and "cannot open video" in out.out
    with pytest.raises(SystemExit, match="unknown_key|not in"):
        main([f"src={corpus}", f"out={tmp_path / 'o2'}", "unknown_key=1"])
    assert TRAIN_LAYOUT.short_side == 320 and TRAIN_LAYOUT.b_pyramid == "none"
