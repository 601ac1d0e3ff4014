"""PyAV random access (egohod.data.video.PyAVReader): every encoding the loader meets returns
exactly the frames a full sequential decode returns, whatever the order and repeats of the
wanted indices; non-reference frames are skipped on the way; files without a usable index fall
back to decoding from the start."""
from fractions import Fraction

import numpy as np
import pytest

from egohod.data.video import PyAVReader, read_frames, write_video

H, W, N = 64, 96, 120


def _moving_texture(n=N, h=H, w=W, seed=0):
    """A random texture panning smoothly (no scene cuts, so x264 puts keyframes only where asked)."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, ((h + n) // 4 + 1, (w + n) // 4 + 1, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    return np.stack([big[t // 2: t // 2 + h, t: t + w] for t in range(n)])


def _full_decode(path):
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def _write_open_gop(path, frames):
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(10))
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = 20
        s.options = {"bf": "3", "x264-params": "open-gop=1:b-pyramid=none", "crf": "23", "preset": "veryfast"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


ENCODINGS = {
    "gop8_bf3_nopyramid": dict(gop_size=8, bframes=3, b_pyramid="none", tune="fastdecode"),
    "gop30_bf3_pyramid": dict(gop_size=30, bframes=3, b_pyramid="normal"),
    "gop250_p_only": dict(gop_size=250),
    "intra_only": dict(gop_size=1),
}


@pytest.fixture(scope="module", params=list(ENCODINGS) + ["open_gop"])
def encoded(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("enc") / f"{request.param}.mp4"
    frames = _moving_texture()
    if request.param == "open_gop":
        _write_open_gop(path, frames)
    else:
        write_video(path, frames, 10, **ENCODINGS[request.param])
    return path, _full_decode(path)


def test_random_access_equals_sequential_decode(encoded):
    path, full = encoded
    assert len(full) == N
    rng = np.random.default_rng(1)
    sets = [np.array([0]), np.array([N - 1]), np.array([N - 1, 0, 57, 57, 3])]
    sets += [rng.integers(0, N, int(rng.integers(1, 20))) for _ in range(25)]
    with PyAVReader(path) as reader:  # one open file serves many reads, as in a chunk spanning clip
        for idx in sets:
            got = reader.read(idx)
            assert sorted(got) == sorted(set(idx.tolist()))
            for i in idx:
                np.testing.assert_array_equal(got[int(i)], full[i], err_msg=f"{path.name} frame {i} of {idx}")
    np.testing.assert_array_equal(read_frames(path, sets[2], backend="pyav"), full[sets[2]])


def test_resize_at_decode(encoded):
    path, _ = encoded
    clip = read_frames(path, [5, 90], resize_short=32, backend="pyav")
    assert clip.shape == (2, 32, 48, 3) and clip.dtype == np.uint8


def test_files_without_a_frame_index_seek_by_time(encoded):
    path, full = encoded
    with PyAVReader(path) as reader:
        reader._entries = None  # as for containers whose index lists keyframes only (Matroska cues)
        got = reader.read([100, 3, 100, 104])
        assert reader.frames_decoded <= 105  # one pass from the keyframe before frame 3 to frame 104
    for i in (3, 100, 104):
        np.testing.assert_array_equal(got[i], full[i])
    with PyAVReader(path) as reader:
        reader._entries = None
        reader.read([100])
        late = reader.frames_decoded
    if "intra" in path.name or "gop8" in path.name:
        assert late <= 10, late  # seeked near frame 100


def test_sequential_fallback_counts_frames_from_the_start(encoded):
    path, full = encoded
    with PyAVReader(path) as reader:
        got = reader._read_sequential(np.array([3, 70]), None)
        assert reader.frames_decoded == 71
    np.testing.assert_array_equal(got[70], full[70])
    np.testing.assert_array_equal(got[3], full[3])


def test_matroska_reads_like_mp4(tmp_path):
    import av

    src = write_video(tmp_path / "v.mp4", _moving_texture(60), 10, gop_size=8, bframes=3)
    mkv = tmp_path / "v.mkv"
    with av.open(str(src)) as i, av.open(str(mkv), "w") as o:  # remux, no re-encoding
        s_in = i.streams.video[0]
        s_out = o.add_stream_from_template(s_in)
        for packet in i.demux(s_in):
            if packet.dts is None:
                continue
            packet.stream = s_out
            o.mux(packet)
    idx = np.array([50, 7, 33])
    np.testing.assert_array_equal(read_frames(mkv, idx, backend="pyav"), read_frames(src, idx, backend="pyav"))
    np.testing.assert_array_equal(read_frames(src, idx, backend="pyav"), _full_decode(src)[idx])
    with PyAVReader(mkv) as reader:  # cues list keyframes only: the demuxer's seek finds frame 48
        reader.read([50])
        assert reader._entries is None and reader.frames_decoded <= 6, reader.frames_decoded


def test_non_reference_frames_are_skipped_on_the_way(tmp_path):
    frames = _moving_texture()
    with_b = write_video(tmp_path / "b.mp4", frames, 10, gop_size=40, bframes=3, b_pyramid="none")
    p_only = write_video(tmp_path / "p.mp4", frames, 10, gop_size=40)
    with PyAVReader(p_only) as reader:
        key = reader._keyframe_at_or_before(38)
        reader.read([38])
        assert reader.frames_decoded == 38 - key + 1  # every frame from the keyframe on is a reference
    with PyAVReader(p_only) as reader:
        reader.read([39, 38])
        assert reader.frames_decoded == 38 - key + 2  # 39 continues from 38: no second seek
    with PyAVReader(with_b) as reader:
        key = reader._keyframe_at_or_before(38)
        reader.read([38])
        # the keyframe, the P-frames (every 4th frame) and frame 38 itself; B-frames skipped
        assert reader.frames_decoded <= (38 - key) // 4 + 4, (key, reader.frames_decoded)


def test_reader_errors_name_the_file(tmp_path):
    from egohod.data.video import VideoReadError

    path = write_video(tmp_path / "v.mp4", _moving_texture(20), 10)
    with PyAVReader(path) as reader:
        with pytest.raises(VideoReadError, match="outside the video") as e:
            reader.read([3, 20])
    assert e.value.path == str(path)
    with pytest.raises(VideoReadError, match="file not found"):
        PyAVReader(tmp_path / "missing.mp4")


def test_concurrent_reads_from_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = write_video(tmp_path / "v.mp4", _moving_texture(60), 10, gop_size=8, bframes=3)
    full = _full_decode(path)
    jobs = [np.array([i, (i * 7) % 60, 59 - i]) for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda idx: read_frames(path, idx, resize_short=32, backend="pyav"), jobs))
    alone = [read_frames(path, idx, resize_short=32, backend="pyav") for idx in jobs]
    for got, want in zip(results, alone):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(read_frames(path, jobs[5], backend="pyav"), full[jobs[5]])
