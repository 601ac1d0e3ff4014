"""Reading the MS-TCN layout against a feature folder: orientation, strides, and the errors a
user meets when features and labels do not fit."""
from __future__ import annotations

import json

import numpy as np
import pytest

from egohod.benchmarks.heads.common import HeadDataError
from egohod.benchmarks.heads.segmentation_data import load_split, read_mapping, upsample
from egohod.benchmarks.heads.synthetic import write_segmentation_set

NAMES = ["video00", "video01", "video02"]


@pytest.fixture()
def dt_set(tmp_path):
    return write_segmentation_set(tmp_path / "dt", num_videos=3, length=(60, 90), layout="DT")


def _load(data, feats, **kw):
    return load_split(data, feats, NAMES, read_mapping(data / "mapping.txt"), **kw)


def test_td_and_dt_features_read_the_same(dt_set, tmp_path):
    data, feats = dt_set
    td = tmp_path / "td"
    td.mkdir()
    for n in NAMES:
        np.save(td / f"{n}.npy", np.load(feats / f"{n}.npy").T)
    a, b = _load(data, feats), _load(data, td)
    for x, y in zip(a, b):
        assert x.features.shape[0] == 16 and np.array_equal(x.features, y.features)
        assert np.array_equal(x.targets, y.targets)


def test_square_features_are_refused_unless_the_layout_is_given(dt_set):
    data, feats = dt_set
    labels = (data / "groundTruth" / "video01.txt").read_text().split()
    (data / "groundTruth" / "video01.txt").write_text("\n".join(labels[:16]))  # a 16-frame video of 16-d features
    np.save(feats / "video01.npy", np.load(feats / "video01.npy")[:, :16])
    with pytest.raises(HeadDataError, match=r"'video01' are square \(16, 16\).*feature_layout=DT or feature_layout=TD"):
        _load(data, feats)
    assert _load(data, feats, layout="DT")[1].features.shape == (16, 16)


def test_same_shape_everywhere_is_ambiguous_without_a_hint(tmp_path):
    data, feats = write_segmentation_set(tmp_path, num_videos=3, length=(70, 70))
    with pytest.raises(HeadDataError, match="every video has the same shape.*feature_dim=D"):
        _load(data, feats)
    assert _load(data, feats, feature_dim=16)[0].features.shape == (16, 70)
    # egohod extract's index.json says D and the layout
    (feats / "index.json").write_text(json.dumps({"embed_dim": 16, "layout": "[D, T] float32"}))
    assert _load(data, feats)[0].features.shape == (16, 70)


def test_wrong_feature_size_is_named(dt_set):
    data, feats = dt_set
    with pytest.raises(HeadDataError, match=r"video00.*feature size D is 32"):
        _load(data, feats, feature_dim=32)
    np.save(feats / "video02.npy", np.zeros((8, 70), np.float32))
    with pytest.raises(HeadDataError, match="no axis length is shared"):
        _load(data, feats)


def test_a_video_without_features_is_named(dt_set):
    data, feats = dt_set
    (feats / "video01.npy").unlink()
    with pytest.raises(HeadDataError, match=r"video 'video01' is in the split but has no features: .*video01.npy"):
        _load(data, feats)


def test_length_mismatch_beyond_the_stride_is_refused(dt_set):
    data, feats = dt_set
    x = np.load(feats / "video00.npy")
    np.save(feats / "video00.npy", x[:, :-1])  # one frame short: within the stride of 1
    _load(data, feats)
    np.save(feats / "video00.npy", x[:, :-3])
    with pytest.raises(HeadDataError, match=r"video 'video00': .* features x feature_stride 1 .*feature_stride="):
        _load(data, feats)


def test_sparse_features_train_on_the_middle_frame_and_predict_every_frame(dt_set):
    data, feats = dt_set
    labels = (data / "groundTruth" / "video00.txt").read_text().split()
    x = np.load(feats / "video00.npy")
    sparse = x[:, ::4]  # one feature per 4 label frames, as `egohod extract` at 4 label frames per window
    np.save(feats / "video00.npy", sparse)
    for n in NAMES[1:]:
        np.save(feats / f"{n}.npy", np.load(feats / f"{n}.npy")[:, ::4])
    v = _load(data, feats, feature_stride=4)[0]
    classes = read_mapping(data / "mapping.txt")
    assert [classes[i] for i in v.targets] == [labels[min(4 * j + 2, len(labels) - 1)] for j in range(sparse.shape[1])]
    up = upsample(np.arange(sparse.shape[1]), 4, len(labels))
    assert len(up) == len(labels) and up[0] == 0 and up[4] == 1 and up[-1] == sparse.shape[1] - 1
    # MS-TCN's sample_rate: dense features, every 2nd one kept, labels at the same frames
    d = _load(data, feats, feature_stride=4, sample_rate=2)[0]
    assert d.features.shape[1] == -(-sparse.shape[1] // 2)
    middle = [labels[min(8 * j + 2, len(labels) - 1)] for j in range(d.features.shape[1])]
    assert [classes[i] for i in d.targets] == middle


def test_labels_outside_the_mapping_are_refused(dt_set):
    data, feats = dt_set
    (data / "groundTruth" / "video02.txt").write_text("action0\nnot_a_class\n" * 40)
    with pytest.raises(HeadDataError, match=r"video02.txt: label\(s\) \['not_a_class'\]"):
        _load(data, feats)
