"""Feature cache (hit, miss, invalidation, corruption), frame history, and that training-time
features (whole demo episodes) equal evaluation-time features (step-by-step history)."""
import json

import numpy as np
import pytest
import torch

from robot.features import FeatureCache, cached_features, memoized_sha256
from robot.obs_encoders import (StateObsEncoder, build_obs_encoder, cache_identity, history_index,
                                identity_key)


def test_history_index_repeats_the_first_frame():
    assert history_index(4, 1).tolist() == [[0], [1], [2], [3]]
    assert history_index(4, 3).tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3]]


def _episodes(rng, lengths=(5, 3), dim=4):
    return [rng.standard_normal((n, dim)).astype(np.float32) for n in lengths]


def test_cache_miss_then_hit_then_invalidation(tmp_path):
    rng = np.random.default_rng(0)
    obs = _episodes(rng)
    enc = StateObsEncoder(4, frames=2)
    calls = []

    def load():
        calls.append(1)
        return obs

    cache = FeatureCache(tmp_path / "cache")
    ident = cache_identity(enc.info, "object_state", (4,), "a" * 64, [0, 1])
    feats, hit = cached_features(enc, ident, load, cache, log=lambda *a: None)
    assert not hit and len(calls) == 1
    assert [f.shape for f in feats] == [(5, 8), (3, 8)]
    # frames=2: [previous, current] object state, the first step repeated
    np.testing.assert_array_equal(feats[0][0], np.concatenate([obs[0][0], obs[0][0]]))
    np.testing.assert_array_equal(feats[0][3], np.concatenate([obs[0][2], obs[0][3]]))
    again, hit = cached_features(enc, ident, load, cache, log=lambda *a: None)
    assert hit and len(calls) == 1  # frames not even read on a hit
    for a, b in zip(feats, again):
        np.testing.assert_array_equal(a, b)
    # anything the features depend on is a different key: recomputed
    for change in ({"dataset_sha256": "b" * 64}, {"weights": "0" * 64}, {"frames": 3}, {"episodes": [0]},
                   {"obs_shape": [8]}):
        other = dict(ident, **change)
        assert identity_key(other) != identity_key(ident)
        assert cache.load(other) is None
    # a corrupt entry is recomputed, not read
    npz, meta = cache.paths(ident)
    npz.write_bytes(b"not a zip")
    _, hit = cached_features(enc, ident, load, cache, log=lambda *a: None)
    assert not hit and len(calls) == 2
    assert json.loads(meta.read_text()) == ident
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_file_sha256_is_memoised_and_tracks_changes(tmp_path):
    f = tmp_path / "demos.hdf5"
    f.write_bytes(b"abc")
    memo = tmp_path / "memo"
    h1 = memoized_sha256(f, memo_dir=memo)
    assert h1 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert h1 in (memo / "file_sha256.json").read_text()
    f.write_bytes(b"abcd")
    assert memoized_sha256(f, memo_dir=memo) != h1


@pytest.mark.parametrize("frames", [1, 3])
def test_vision_features_train_equal_eval(frames):
    """encode_episode (training, from a demo) and the rollout history (evaluation) agree."""
    torch.manual_seed(0)
    enc = build_obs_encoder("egovideo_tiny", None, frames)
    assert enc.info.random_weights and "RANDOM WEIGHTS" in enc.info.label
    assert enc.info.clip_len == (enc.model.input_spec.num_frames if frames == 1 else frames)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    train = enc.encode_episode(video, batch=2)
    assert train.shape == (5, enc.info.embed_dim)
    hist = enc.new_history(video[:1])
    steps = [enc.encode_history(hist).numpy()[0]]
    for t in range(1, 5):
        hist = enc.push_history(hist, video[t:t + 1])
        steps.append(enc.encode_history(hist).numpy()[0])
    np.testing.assert_allclose(np.stack(steps), train, rtol=1e-4, atol=1e-5)
    if frames == 1:  # the current frame repeated: history before t does not matter
        single = enc.encode_episode(video[3:4])
        np.testing.assert_allclose(single[0], train[3], rtol=1e-4, atol=1e-5)


def test_encoder_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder 'resnet9000'.*state"):
        build_obs_encoder("resnet9000", None, 1)
    with pytest.raises(ValueError, match="encoder 'state' has no weights"):
        build_obs_encoder("state", "w.pt", 1)
    with pytest.raises(FileNotFoundError, match="encoder.checkpoint='missing.pt'"):
        build_obs_encoder("egovideo_tiny", "missing.pt", 1)
    bad = tmp_path / "r3m.pt"
    torch.save({"r3m": {"module.convnet.conv1.weight": torch.zeros(64, 3, 7, 7)}}, bad)
    with pytest.raises(ValueError, match=r"encoder/checkpoint mismatch: cannot load .*r3m.pt.* into encoder 'egovideo_tiny'"):
        build_obs_encoder("egovideo_tiny", str(bad), 1)


def test_state_encoder_keeps_only_the_indexed_entries_in_training_and_evaluation():
    rng = np.random.default_rng(1)
    obs = rng.standard_normal((6, 30)).astype(np.float32)
    index = [13, 21, 22, 29]
    enc = StateObsEncoder(30, frames=2, index=index)
    assert enc.info.embed_dim == 8 and enc.info.state_index == index
    train = enc.encode_episode(obs)
    np.testing.assert_array_equal(train[3], np.concatenate([obs[2, index], obs[3, index]]))
    hist = enc.new_history(obs[:1])
    for t in range(1, 4):
        hist = enc.push_history(hist, obs[t:t + 1])
    np.testing.assert_array_equal(enc.encode_history(hist).numpy()[0], train[3])
    # the selection is part of the feature-cache key
    full = StateObsEncoder(30, frames=2)
    key = lambda e: identity_key(cache_identity(e.info, "object_state", (30,), "a" * 64, [0]))  # noqa: E731
    assert key(enc) != key(full)
    with pytest.raises(ValueError, match="does not fit a 30-d object_state"):
        StateObsEncoder(30, index=[3, 30])
    with pytest.raises(ValueError, match="expects 30-d object_state"):
        enc.encode_episode(obs[:, :20])


def test_task_state_index_names_the_task_joint_and_the_hand_site_entries():
    import envs
    from envs.kitchen_env import task_state_index

    env = envs.make("kitchen/microwave", camera=None, seed=0)
    obs, _ = env.reset(seed=0)
    index = task_state_index("microwave")
    assert index == env.unwrapped.task_state_index and index[1:] == tuple(range(21, 30))
    assert obs["object_state"][index[0]] == np.float32(env.unwrapped.task_qpos()[0])
    assert len(task_state_index("kitchen/kettle")) == 7 + 9  # a free joint: 7 qpos
    env.close()


def test_random_vision_encoder_is_a_function_of_its_seed():
    """The seed of random weights is in the encoder identity (so in the cache key and in
    checkpoints), and the same seed rebuilds the same features whatever the global RNG did."""
    video = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    torch.manual_seed(11)
    a = build_obs_encoder("egovideo_tiny", None, 1, seed=1)
    torch.manual_seed(12)
    b = build_obs_encoder("egovideo_tiny", None, 1, seed=1)
    c = build_obs_encoder("egovideo_tiny", None, 1, seed=2)
    assert (a.info.weights, a.info.seed, c.info.weights) == ("random:seed=1", 1, "random:seed=2")
    assert a.info.label == "egovideo_tiny (RANDOM WEIGHTS, seed 1)" and a.info.to_dict()["seed"] == 1
    np.testing.assert_array_equal(a.encode_episode(video), b.encode_episode(video))
    assert np.abs(a.encode_episode(video) - c.encode_episode(video)).max() > 1e-2
    ident = [cache_identity(e.info, "rgb_left", (32, 32, 3), "0" * 64, [0]) for e in (a, b, c)]
    assert identity_key(ident[0]) == identity_key(ident[1]) != identity_key(ident[2])
