"""VideoTextDataset (both clips from one segment, deterministic per (epoch, index), bad-sample
replacement), the resumable sampler and the bad-sample monitor; the synthetic corpus CLI."""
import numpy as np
import pytest
import torch

from egohod.data.datasets import (
    BadSampleMonitor,
    ResumableSampler,
    SampleFailure,
    TooManyBadSamples,
    VideoTextDataset,
    collate_video_text,
)
from egohod.data.metadata import ClipRecord, read_hod_csv
from egohod.data.synthetic import SyntheticConfig, make_corpus
from egohod.data.transforms import VideoTransform
from egohod.data.video import chunk_path, probe_video, write_video
from egohod.models.spec import CLIP_MEAN, CLIP_STD

FPS = 10


@pytest.fixture(scope="module")
def indexed_root(tmp_path_factory):
    """Two videos whose frame i has grey level 4*(i mod 60), chunked at 3 s (30 frames)."""
    root = tmp_path_factory.mktemp("ds")
    for vid in ("a", "b"):
        for c in range(2):
            fr = np.zeros((30, 48, 64, 3), np.uint8)
            for k in range(30):
                fr[k] = 4 * (c * 30 + k)
            write_video(chunk_path(root, vid, c), fr, FPS)
    return root


def _ids(clip):
    return np.round(clip[:, 8:-8, 8:-8].astype(float).mean(axis=(1, 2, 3)) / 4).astype(int)


def _ds(root, records, **kw):
    kw = {"chunk_seconds": 3, "num_frames": 4, "slow_frames": 8, "resize_short": None, **kw}
    return VideoTextDataset(records, root, **kw)


def test_fast_and_slow_clips_come_from_the_same_segment(indexed_root):
    recs = [ClipRecord("a", 2.0, 4.0, ("x",))]  # frames 20..39, across the chunk boundary at 30
    ds = _ds(indexed_root, recs)
    s = ds[(3, 0)]
    fast, slow = _ids(s["video"].numpy()), _ids(s["video_slow"].numpy())
    assert s["video"].shape == (4, 48, 64, 3) and s["video_slow"].shape == (8, 48, 64, 3)
    for ids, n in ((fast, 4), (slow, 8)):
        seg = 20 / n
        assert all(20 + int(k * seg) <= i < 20 + int((k + 1) * seg) + 1 for k, i in enumerate(ids))
    ev = _ds(indexed_root, recs, train=False)[0]
    assert _ids(ev["video"].numpy()).tolist() == [22, 27, 32, 37]


def test_samples_are_a_function_of_seed_epoch_index(indexed_root):
    recs = [ClipRecord("a", 0.0, 5.5, ("one", "two", "three")), ClipRecord("b", 1.0, 5.0, ("x",))]
    tf = VideoTransform(32, CLIP_MEAN, CLIP_STD, train=True, train_short_side=40)
    ds = _ds(indexed_root, recs, transform=tf, tokenizer=lambda t: torch.tensor([[len(x) for x in t]]))
    a, b, c = ds[(1, 0)], ds[(1, 0)], ds[(2, 0)]
    assert a["video"].shape == (3, 4, 32, 32) and a["video_slow"].shape == (3, 8, 32, 32)
    assert torch.equal(a["video"], b["video"]) and a["text"] == b["text"] and torch.equal(a["tokens"], b["tokens"])
    assert not torch.equal(a["video"], c["video"])
    texts = {ds[(e, 0)]["text"] for e in range(12)}
    assert texts == {"one", "two", "three"}  # one caption drawn per step


def test_shared_crop_and_flip_for_both_paths(indexed_root):
    """Both paths of a sample share one crop and one flip. The segment holds a single frame
    (0.5-0.6 s at 10 fps: frame 5), so every frame of both clips is the same decoded frame (no
    comparison of different frames of a lossy video); after the shared transform they must be
    equal exactly, while the crop itself changes from epoch to epoch."""
    root = indexed_root / "one_frame"
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.zeros((20, 48, 64, 3), np.uint8)
    frames[..., 0], frames[..., 1] = 4 * xx, 5 * yy  # a 2-D pattern: any other crop or flip shows
    write_video(chunk_path(root, "s", 0), frames, FPS)
    recs = [ClipRecord("s", 0.5, 0.6, ("x",))]
    raw = _ds(root, recs)[(0, 0)]
    decoded = np.concatenate([raw["video"].numpy(), raw["video_slow"].numpy()])
    assert (decoded == decoded[:1]).all()  # one decoded frame, repeated in both clips
    tf = VideoTransform(32, CLIP_MEAN, CLIP_STD, train=True, train_short_side=48)
    ds = _ds(root, recs, transform=tf)
    firsts = []
    for e in range(6):
        s = ds[(e, 0)]
        both = torch.cat([s["video"], s["video_slow"]], dim=1)
        assert torch.equal(both, s["video"][:, :1].expand_as(both)), e
        firsts.append(s["video"][:, 0])
    assert any(not torch.equal(firsts[0], f) for f in firsts[1:])  # the crop/flip is random per epoch


def test_bad_samples_are_replaced_and_reported(indexed_root, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0000.mp4").write_bytes(b"junk" * 64)
    recs = [ClipRecord("a", 0, 1, ("ok",), source="m.csv:2"), ClipRecord("missing", 0, 1, ("x",), source="m.csv:3"),
            ClipRecord("a", 50, 51, ("x",), source="m.csv:4"), ClipRecord("a", 1, 2, (), source="m.csv:5")]
    ds = _ds(indexed_root, recs, slow_frames=0)
    reasons = {}
    for i in (1, 2, 3):
        s = ds[(0, i)]
        assert s["index"] != i and s["failures"][0].index == i and s["failures"][0].source == f"m.csv:{i + 2}"
        reasons[i] = s["failures"][0].reason
    assert "chunk missing" in reasons[1] and "outside the video" in reasons[2] and reasons[3] == "empty caption"
    assert ds[(0, 0)]["failures"] == []
    replaced = ds[(0, 1)]
    assert replaced["index"] == 0 and len(replaced["failures"]) >= 1  # the only good record
    batch = collate_video_text([replaced, ds[(0, 0)]])
    assert batch["failures"] == replaced["failures"] and batch["video"].shape[0] == 2
    all_bad = _ds(tmp_path, [ClipRecord("broken", 0, 1, ("x",))], max_retries=2, slow_frames=0)
    with pytest.raises(TooManyBadSamples, match=r"3 consecutive replacements failed:\n.*broken.*cannot open video"):
        all_bad[0]


def test_monitor_stops_above_the_configured_fraction():
    f = SampleFailure(3, "m.csv:5", "/v/x.mp4", "file not found")
    seen = []
    m = BadSampleMonitor(max_fraction=0.1, min_attempts=20, log=seen.append)
    m.update(10, [f, f])  # 2/12 but below min_attempts: no stop yet
    m.update(20, [])
    assert m.failed == 2 and m.attempts == 32 and len(seen) == 2
    with pytest.raises(TooManyBadSamples, match=r"(?s)4 of 35 samples failed.*max_bad_fraction=10.0%.*/v/x.mp4 \(m.csv:5\): file not found"):
        m.update(1, [f, f])
    m2 = BadSampleMonitor(0.5)
    m2.load_state_dict({"loaded": 7, "failed": 1})
    assert m2.fraction == 1 / 8


def test_resumable_sampler_partitions_and_resumes():
    s = [ResumableSampler(10, 3, r, seed=4) for r in range(3)]
    for x in s:
        x.set_epoch(2)
    parts = [[i for _, i in x] for x in s]
    assert all(len(p) == 3 for p in parts) and len(set(sum(parts, []))) == 9
    assert all(e == 2 for e, _ in s[0])
    s[1].set_epoch(2, start=2)
    assert [i for _, i in s[1]] == parts[1][2:] and len(s[1]) == 1
    s[1].set_epoch(3)
    assert [i for _, i in s[1]] != parts[1]
    with pytest.raises(ValueError, match="cannot be split"):
        ResumableSampler(2, 3, 0)


def test_synthetic_corpus_cli(tmp_path, capsys):
    from egohod.data.synthetic import main

    out = tmp_path / "syn"
    # `python -m egohod.data.synthetic ...` calls main() with these arguments (in-process: no interpreter start-up)
    main([f"out={out}", "videos=2", "seconds=17", "fps=4", "height=48", "width=64"])
    assert "wrote 2 videos" in capsys.readouterr().out
    recs = read_hod_csv(out / "metadata.csv")
    assert sorted({r.video_id for r in recs}) == ["synth00000", "synth00001"]
    assert sorted(x.name for x in (out / "videos" / "synth00000").iterdir()) == ["0000.mp4", "0001.mp4"]
    assert probe_video(out / "videos" / "synth00000" / "0000.mp4").num_frames == 60
    assert probe_video(out / "videos" / "synth00000" / "0001.mp4").num_frames == 8
    assert any(r.start < 15 < r.end for r in recs), "some clip spans the chunk boundary"
    assert any(len(r.texts) == 3 for r in recs) and all("moves the" in r.texts[0] for r in recs)
    with pytest.raises(SystemExit, match="vidoes"):
        main([f"out={out}", "vidoes=2"])
    with pytest.raises(SystemExit, match="missing mandatory value: out"):
        main(["videos=2"])


def test_synthetic_captions_describe_the_pixels(tmp_path):
    make_corpus(SyntheticConfig(out=str(tmp_path), videos=1, seconds=5, fps=8, height=48, width=64,
                                segment_seconds=2.5), progress=False)
    recs = read_hod_csv(tmp_path / "metadata.csv")
    ds = VideoTextDataset(recs, tmp_path / "videos", num_frames=2, slow_frames=0, train=False, resize_short=None)
    for i, r in enumerate(recs):
        clip = ds[i]["video"].numpy().astype(float)
        direction = r.texts[0].split()[-1]
        centres = []
        for f in clip:
            fg = np.abs(f - np.median(f.reshape(-1, 3), axis=0)).sum(-1) > 120  # the shape's pixels
            ys, xs = np.nonzero(fg)
            centres.append((xs.mean(), ys.mean()))
        dx, dy = centres[1][0] - centres[0][0], centres[1][1] - centres[0][1]
        expect = {"left": dx < -2, "right": dx > 2, "up": dy < -2, "down": dy > 2}
        assert expect[direction], f"{r.texts[0]}: shape moved by ({dx:.1f}, {dy:.1f})"
