"""Video reading: segment sampling, plain and chunked layouts, both backends, clear errors.

Test videos encode the frame index as grey level ``4 * i`` so decoded frames can be identified
(h264 is lossy: a decoded level is within +-2 of the written one, far below the 4-level step).
"""
import numpy as np
import pytest

from egohod.data.video import (
    VideoReadError,
    chunk_path,
    probe_video,
    read_chunked_clip,
    read_chunked_clips,
    read_clip,
    read_clips,
    sample_segment_indices,
    video_duration,
    write_video,
)

FPS = 10


def _index_frames(first: int, count: int, h: int = 48, w: int = 64) -> np.ndarray:
    fr = np.zeros((count, h, w, 3), np.uint8)
    for k in range(count):
        fr[k] = 4 * (first + k)
    return fr


def _decoded_index(clip: np.ndarray) -> np.ndarray:
    return np.round(clip[:, 8:-8, 8:-8].astype(np.float64).mean(axis=(1, 2, 3)) / 4).astype(int)


@pytest.fixture(scope="module")
def plain_video(tmp_path_factory):
    p = tmp_path_factory.mktemp("plain") / "v.mp4"
    write_video(p, _index_frames(0, 50), FPS)  # 5 s
    return p


@pytest.fixture(scope="module")
def chunked_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunks")
    # 3 chunks of 2 s at 10 fps: frames 0-19, 20-39, 40-49 (the last one is short).
    for c, (a, n) in enumerate([(0, 20), (20, 20), (40, 10)]):
        write_video(chunk_path(root, "vid", c), _index_frames(a, n), FPS)
    return root


def test_middle_sampling_takes_segment_centres():
    assert sample_segment_indices(0, 40, 4, "middle").tolist() == [5, 15, 25, 35]
    assert sample_segment_indices(10, 14, 8, "middle").tolist() == [10, 10, 11, 11, 12, 12, 13, 13]
    assert sample_segment_indices(7, 8, 3, "middle").tolist() == [7, 7, 7]


def test_random_sampling_stays_inside_each_segment_and_covers_it():
    rng = np.random.default_rng(0)
    draws = np.stack([sample_segment_indices(100, 140, 4, "random", rng) for _ in range(400)])
    for s in range(4):
        col = draws[:, s]
        assert col.min() == 100 + 10 * s and col.max() == 100 + 10 * s + 9
    # seeded generators give the same draws
    a = sample_segment_indices(0, 1000, 16, "random", np.random.default_rng(3))
    b = sample_segment_indices(0, 1000, 16, "random", np.random.default_rng(3))
    assert np.array_equal(a, b) and np.all(np.diff(a) > 0)


def test_sampling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="empty frame range"):
        sample_segment_indices(5, 5, 4)
    with pytest.raises(ValueError, match="mode"):
        sample_segment_indices(0, 5, 4, "uniform")


def test_probe_and_duration(plain_video):
    info = probe_video(plain_video)
    assert (info.num_frames, info.fps, info.width, info.height) == (50, FPS, 64, 48)
    assert video_duration(plain_video) == pytest.approx(5.0)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_read_clip_returns_segment_middle_frames(plain_video, backend):
    clip = read_clip(plain_video, 1.0, 3.0, num_frames=4, mode="middle", backend=backend)
    assert clip.dtype == np.uint8 and clip.shape == (4, 48, 64, 3)
    # frames 10..29 in 4 segments of 5 -> centres 12, 17, 22, 27
    assert _decoded_index(clip).tolist() == [12, 17, 22, 27]


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_resize_at_decode_keeps_aspect(plain_video, backend):
    clip = read_clip(plain_video, 0, 2, num_frames=2, resize_short=40, backend=backend)
    assert clip.shape == (2, 40, 53, 3)


def test_two_clips_of_one_segment(plain_video):
    c4, c16 = read_clips(plain_video, 0.0, 4.0, [4, 16], mode="random", rng=np.random.default_rng(0))
    assert c4.shape[0] == 4 and c16.shape[0] == 16
    i4, i16 = _decoded_index(c4), _decoded_index(c16)
    assert i4.min() >= 0 and i4.max() < 40 and i16.min() >= 0 and i16.max() < 40
    assert np.all(np.diff(i16) >= 0)


def test_end_past_video_is_clamped_start_past_video_fails(plain_video):
    clip = read_clip(plain_video, 4.0, 9.0, num_frames=2)
    assert _decoded_index(clip).tolist() == [42, 47]
    with pytest.raises(VideoReadError, match="outside the video") as e:
        read_clip(plain_video, 6.0, 7.0)
    assert str(plain_video) in str(e.value)


def test_missing_and_corrupt_files_name_path_and_reason(tmp_path, plain_video):
    with pytest.raises(VideoReadError, match="file not found") as e:
        read_clip(tmp_path / "nope.mp4")
    assert e.value.path == str(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    with pytest.raises(VideoReadError, match="cannot open video"):
        read_clip(bad)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        read_clip(empty)
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(plain_video.read_bytes()[:2000])
    with pytest.raises(VideoReadError):
        read_clip(truncated, 0, 5, num_frames=4)
    with pytest.raises(VideoReadError, match="empty clip"):
        read_clip(plain_video, 2.0, 1.0)


def test_chunked_clip_inside_one_chunk(chunked_root):
    clip = read_chunked_clip(chunked_root, "vid", 2.0, 4.0, num_frames=4, chunk_seconds=2)
    assert _decoded_index(clip).tolist() == [22, 27, 32, 37]


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_chunked_clip_spans_two_chunks(chunked_root, backend):
    # frames 15..24: the first half in chunk 0, the second half in chunk 1
    clip = read_chunked_clip(chunked_root, "vid", 1.5, 2.5, num_frames=10, chunk_seconds=2, backend=backend)
    assert _decoded_index(clip).tolist() == list(range(15, 25))


def test_chunked_clip_spans_three_chunks_and_clamps_at_video_end(chunked_root):
    c4, c2 = read_chunked_clips(chunked_root, "vid", 1.0, 7.0, [4, 2], chunk_seconds=2)
    # the video ends at 5 s (frame 50): range 10..49
    assert _decoded_index(c4).tolist() == [15, 25, 35, 45]
    assert _decoded_index(c2).tolist() == [20, 40]


def test_chunked_errors(chunked_root):
    with pytest.raises(VideoReadError, match="outside the video, whose last chunk is 0002.mp4"):
        read_chunked_clip(chunked_root, "vid", 6.5, 7.0, chunk_seconds=2)
    with pytest.raises(VideoReadError, match="no chunks found") as e:
        read_chunked_clip(chunked_root, "other", 0.0, 1.0, chunk_seconds=2)
    assert "other" in e.value.path
    with pytest.raises(VideoReadError, match="outside the video"):
        read_chunked_clip(chunked_root, "vid", 5.2, 5.8, chunk_seconds=2)


def test_write_video_validates_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 33, 64, 3), np.uint8), 10)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 32, 48, 3), np.float32), 10)
    p = write_video(tmp_path / "m.mp4", _index_frames(0, 12), 6, codec="mpeg4")
    assert probe_video(p).num_frames == 12 and not list(tmp_path.glob(".*tmp*"))


def test_auto_backend_falls_back_to_pyav_where_decord_fails(tmp_path):
    # decord 0.6 cannot copy out some small frame sizes (e.g. 48x32: "size must exactly match")
    p = write_video(tmp_path / "small.mp4", _index_frames(0, 20, h=32, w=48), FPS)
    with pytest.raises(VideoReadError, match="decord"):
        read_clip(p, 0, 2, num_frames=4, backend="decord")
    clip = read_clip(p, 0, 2, num_frames=4, backend="auto")
    assert clip.shape == (4, 32, 48, 3) and _decoded_index(clip).tolist() == [2, 7, 12, 17]
