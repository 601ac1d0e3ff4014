"""Demo files as robomimic reads them with its defaults: next_obs, seeded mask/train + mask/valid,
the upgrade of older files, and the converters writing both."""
import json

import h5py
import numpy as np
import pytest

from robot.demos import (KITCHEN_ENV_TYPE, Episode, add_robomimic_fields, kitchen_env_args, read_demos,
                         read_env_args, split_demos, write_demos)

ENV_ARGS = kitchen_env_args("kitchen/microwave", ["left"], 8, horizon=50)


def _episode(t, seed):
    rng = np.random.default_rng(seed)
    obs = {"rgb_left": rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8),
           "proprio": rng.normal(size=(t, 9)).astype(np.float32)}
    return Episode(obs=obs, actions=rng.uniform(-1, 1, (t, 9)), rewards=np.zeros(t),
                   dones=np.eye(t)[-1], states=rng.normal(size=(t, 59)), seed=seed)


def _masks(path):
    with h5py.File(path, "r") as f:
        return {k: sorted(x.decode() for x in f["mask"][k][()]) for k in f["mask"]}


def test_split_is_seeded_disjoint_and_follows_the_ratio():
    names = [f"demo_{i}" for i in range(20)]
    train, valid = split_demos(names, 0.25, seed=3)
    assert len(valid) == 5 and sorted(train + valid) == sorted(names) and not set(train) & set(valid)
    assert split_demos(names, 0.25, seed=3) == (train, valid)
    assert split_demos(names, 0.25, seed=4)[1] != valid
    assert split_demos(names, 0.0, seed=0) == (names, [])
    assert len(split_demos(names[:3], 0.1, 0)[1]) == 1      # a ratio > 0 keeps one validation demo
    assert split_demos(names[:1], 0.5, 0) == (names[:1], [])  # ... but never all of them
    with pytest.raises(ValueError, match="valid_ratio"):
        split_demos(names, 1.0, 0)


def test_file_has_next_obs_and_masks_that_robomimic_reads_with_its_defaults(tmp_path):
    import robomimic.utils.obs_utils as ObsUtils
    from robomimic.config import config_factory
    from robomimic.utils.dataset import SequenceDataset

    path = tmp_path / "d.hdf5"
    eps = [_episode(5 + i, i) for i in range(6)]
    write_demos(path, eps, ENV_ARGS, valid_ratio=0.34, split_seed=1)
    masks = _masks(path)
    assert len(masks["valid"]) == 2 and len(masks["train"]) == 4
    with h5py.File(path, "r") as f:
        nxt, obs = f["data/demo_2/next_obs/rgb_left"], f["data/demo_2/obs/rgb_left"]
        assert nxt.is_virtual  # no second copy of the frames
        np.testing.assert_array_equal(nxt[:-1], obs[1:])
        np.testing.assert_array_equal(nxt[-1], obs[-1])
    defaults = config_factory("iql").train  # offline-RL configs load next_obs (used to be a KeyError)
    assert defaults.hdf5_load_next_obs
    ObsUtils.initialize_obs_utils_with_obs_specs({"obs": {"low_dim": ["proprio"], "rgb": ["rgb_left"]}})
    sets = {key: SequenceDataset(hdf5_path=str(path), obs_keys=("proprio", "rgb_left"),
                                 dataset_keys=("actions", "rewards", "dones"), load_next_obs=True,
                                 hdf5_cache_mode=defaults.hdf5_cache_mode, hdf5_use_swmr=defaults.hdf5_use_swmr,
                                 filter_by_attribute=key, seq_length=1, frame_stack=1)
            for key in ("train", "valid")}
    assert sorted(sets["valid"].demos) == masks["valid"]
    assert len(sets["train"]) == sum(e.num_samples for e, n in zip(eps, range(6)) if f"demo_{n}" in masks["train"])
    first, second = sets["train"][0], sets["train"][1]  # steps 0 and 1 of the first training demo
    assert first["next_obs"]["rgb_left"].shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(first["next_obs"]["rgb_left"], second["obs"]["rgb_left"])


def test_older_files_get_next_obs_and_masks_in_place(tmp_path, capsys):
    from robot.demo_sources import main

    path = tmp_path / "old.hdf5"
    write_demos(path, [_episode(4, i) for i in range(5)], ENV_ARGS, next_obs=False)
    with h5py.File(path, "a") as f:  # as files were written before the split and the kitchen env type
        del f["mask"]
        f["data"].attrs["env_args"] = json.dumps(dict(ENV_ARGS, type=2, env_kwargs={"horizon": 50, "image_size": 8}))
    before = read_demos(path)
    assert main(["robomimic-fields", str(path), "--valid-ratio", "0.4", "--split-seed", "2"]) == 0
    assert '"valid": 2' in capsys.readouterr().out
    with h5py.File(path, "r") as f:
        assert all("next_obs" in f["data"][k] for k in f["data"])
        np.testing.assert_array_equal(f["data/demo_0/next_obs/proprio"][0], f["data/demo_0/obs/proprio"][1])
    assert _masks(path)["valid"] == sorted(split_demos([f"demo_{i}" for i in range(5)], 0.4, 2)[1])
    args = read_env_args(path)
    assert args["type"] == KITCHEN_ENV_TYPE and args["env_kwargs"]["cameras"] == ["left"]
    for a, b in zip(before, read_demos(path)):
        np.testing.assert_array_equal(a.obs["rgb_left"], b.obs["rgb_left"])
    assert add_robomimic_fields(path, 0.2, 0)["valid"] != []  # a second call only rewrites the split
    assert not list(tmp_path.glob("old.hdf5.partial-*"))


def test_converter_writes_the_split(tmp_path):
    import pickle

    from robot.demos import convert_demos

    rng = np.random.default_rng(0)
    paths = [{"images": rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
              "observations": rng.normal(size=(4, 12)), "actions": rng.uniform(-1, 1, (4, 9))}
             for _ in range(4)]
    src = tmp_path / "demos.pickle"
    src.write_bytes(pickle.dumps(paths))
    dst = tmp_path / "out.hdf5"
    summary = convert_demos(src, dst, camera="left", progress=False, valid_ratio=0.5, split_seed=7)
    assert summary["demos"] == 4
    masks = _masks(dst)
    assert masks["valid"] == sorted(split_demos([f"demo_{i}" for i in range(4)], 0.5, 7)[1])
    with h5py.File(dst, "r") as f:
        assert "next_obs" in f["data/demo_3"] and f["mask"].attrs["split_seed"] == 7
