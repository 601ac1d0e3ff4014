"""The feature-cache key, through the functions that build it (``cache_identity`` from an
encoder's ``info``, ``identity_key``, ``FeatureCache``), one field at a time: each thing the
frozen features depend on (weights, clip length, input spec, observation key / camera, dataset,
episodes) must give another key, and features cached for one value must not be read for another.
"""
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from egohod.models.checkpoint_io import file_sha256
from robot.features import FeatureCache
from robot.obs_encoders import StateObsEncoder, build_obs_encoder, cache_identity, identity_key

SHA_A = "a" * 64
EPISODES = [0, 1]
SHAPE = (32, 32, 3)


def _identity(info, obs_key="rgb_left", shape=SHAPE, sha=SHA_A, episodes=EPISODES):
    return cache_identity(info, obs_key, shape, sha, episodes)


def _assert_separate(cache: FeatureCache, a: dict, b: dict):
    """Different keys and cache files; features stored for ``a`` are not returned for ``b``."""
    assert identity_key(a) != identity_key(b)
    assert cache.paths(a) != cache.paths(b)
    cache.save(a, [np.zeros((3, 4), np.float32), np.ones((2, 4), np.float32)])
    assert cache.load(a) is not None
    assert cache.load(b) is None


@pytest.fixture(scope="module")
def tiny():
    return build_obs_encoder("egovideo_tiny", None, 1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny):
    """Two egovideo_tiny checkpoints with different weights, and a byte-identical copy of the
    first under another name."""
    import egohod

    d = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = egohod.create_model("egovideo_tiny")
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        path = d / f"tiny_{seed}.pt"
        torch.save({"state_dict": model.state_dict()}, path)
        paths.append(path)
    copy = d / "renamed.pt"
    shutil.copyfile(paths[0], copy)
    return paths[0], paths[1], copy


def test_different_weights_different_key(tmp_path, tiny, checkpoints):
    a_path, b_path, copy = checkpoints
    a = build_obs_encoder("egovideo_tiny", str(a_path), 1)
    b = build_obs_encoder("egovideo_tiny", str(b_path), 1)
    assert a.info.weights == file_sha256(a_path) != b.info.weights == file_sha256(b_path)
    cache = FeatureCache(tmp_path)
    _assert_separate(cache, _identity(a.info), _identity(b.info))
    _assert_separate(FeatureCache(tmp_path / "r"), _identity(tiny.info), _identity(a.info))  # random vs trained
    # the same bytes under another name are the same weights: the same features
    same = build_obs_encoder("egovideo_tiny", str(copy), 1)
    assert identity_key(_identity(same.info)) == identity_key(_identity(a.info))


def test_different_random_seed_different_key(tmp_path):
    s0 = build_obs_encoder("egovideo_tiny", None, 1, seed=0)
    s1 = build_obs_encoder("egovideo_tiny", None, 1, seed=1)
    assert s0.info.random_weights and s1.info.random_weights
    _assert_separate(FeatureCache(tmp_path), _identity(s0.info), _identity(s1.info))
    again = build_obs_encoder("egovideo_tiny", None, 1, seed=0)
    assert identity_key(_identity(again.info)) == identity_key(_identity(s0.info))


def test_clip_len_alone_changes_the_key(tmp_path, tiny):
    other = dataclasses.replace(tiny.info, clip_len=tiny.info.clip_len + 4)
    assert other.frames == tiny.info.frames and other.input_spec == tiny.info.input_spec
    _assert_separate(FeatureCache(tmp_path), _identity(tiny.info), _identity(other))


def test_frames_alone_change_the_key(tmp_path, tiny):
    other = dataclasses.replace(tiny.info, frames=tiny.info.frames + 1)
    _assert_separate(FeatureCache(tmp_path), _identity(tiny.info), _identity(other))


@pytest.mark.parametrize("field", ["image_size", "mean", "std", "resize_size"])
def test_input_spec_alone_changes_the_key(tmp_path, tiny, field):
    spec = dict(tiny.info.input_spec)
    assert field in spec, f"input_spec has no {field!r}: {sorted(spec)}"
    value = spec[field]
    spec[field] = [v * 0.5 for v in value] if isinstance(value, (list, tuple)) else value * 2
    other = dataclasses.replace(tiny.info, input_spec=spec)
    assert other.clip_len == tiny.info.clip_len
    _assert_separate(FeatureCache(tmp_path), _identity(tiny.info), _identity(other))


def test_camera_changes_the_key(tmp_path, tiny):
    left, right = tiny.obs_key("left"), tiny.obs_key("right")
    assert left != right
    _assert_separate(FeatureCache(tmp_path), _identity(tiny.info, obs_key=left), _identity(tiny.info, obs_key=right))


def test_dataset_episodes_and_image_shape_change_the_key(tmp_path, tiny):
    f1, f2 = tmp_path / "a.hdf5", tmp_path / "b.hdf5"
    f1.write_bytes(b"demo file one")
    f2.write_bytes(b"demo file two")
    base = _identity(tiny.info, sha=file_sha256(f1))
    _assert_separate(FeatureCache(tmp_path / "c1"), base, _identity(tiny.info, sha=file_sha256(f2)))
    _assert_separate(FeatureCache(tmp_path / "c2"), base, _identity(tiny.info, sha=file_sha256(f1), episodes=[0]))
    _assert_separate(FeatureCache(tmp_path / "c3"), base,
                     _identity(tiny.info, sha=file_sha256(f1), shape=(64, 64, 3)))


def test_encoder_name_and_state_selection_change_the_key(tmp_path, tiny):
    renamed = dataclasses.replace(tiny.info, name="egovideo_b")
    _assert_separate(FeatureCache(tmp_path / "n"), _identity(tiny.info), _identity(renamed))
    full, task = StateObsEncoder(30), StateObsEncoder(30, index=[13, 21, 22, 23])
    key = full.obs_key("left")
    _assert_separate(FeatureCache(tmp_path / "s"), _identity(full.info, obs_key=key, shape=(30,)),
                     _identity(task.info, obs_key=key, shape=(30,)))


def test_identical_inputs_give_the_same_key(tiny):
    again = build_obs_encoder("egovideo_tiny", None, 1)
    assert identity_key(_identity(again.info)) == identity_key(_identity(tiny.info))
