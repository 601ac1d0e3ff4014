"""Demo files: robomimic HDF5 round trip, robomimic's own reader, crash safety, errors, and the
D4RL / Minari / classic-pickle readers on small files written here in those formats."""
import json
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from envs.cameras import get_camera
from envs.renderer import OffscreenRenderer, default_render_size
from robot.demos import (DemoFileError, DemoWriter, Episode, kitchen_env_args,
                         read_classic_multiview, read_classic_pickle, convert_demos,
                         detect_demo_format,
                         read_d4rl_kitchen, read_demos, read_env_args, read_minari_kitchen,
                         write_demos)


def _episode(t=6, seed=0, cams=("left", "right"), size=8):
    rng = np.random.default_rng(seed)
    obs = {f"rgb_{c}": rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8) for c in cams}
    obs["proprio"] = rng.normal(size=(t, 9)).astype(np.float32)
    obs["object_state"] = rng.normal(size=(t, 30)).astype(np.float32)
    dones = np.zeros(t)
    dones[-1] = 1
    return Episode(obs=obs, actions=rng.uniform(-1, 1, (t, 9)), rewards=rng.uniform(size=t),
                   dones=dones, states=rng.normal(size=(t, 59)), seed=seed, task="microwave",
                   attrs={"kitchen_offset": [0.01, -0.02, 0.03], "success": True})


ENV_ARGS = kitchen_env_args("kitchen/microwave", ["left", "right"], 8, horizon=50)


def test_round_trip_and_layout(tmp_path):
    path = tmp_path / "demos.hdf5"
    episodes = [_episode(6, 0), _episode(4, 1)]
    write_demos(path, episodes, ENV_ARGS)
    with h5py.File(path, "r") as f:
        assert f["data"].attrs["total"] == 10
        assert json.loads(f["data"].attrs["env_args"])["cameras"] == ["left", "right"]
        assert sorted(f["data"].keys()) == ["demo_0", "demo_1"]
        d = f["data/demo_1"]
        assert d.attrs["num_samples"] == 4
        assert set(d["obs"].keys()) == {"rgb_left", "rgb_right", "proprio", "object_state"}
        assert d["obs/rgb_left"].dtype == np.uint8 and d["states"].shape == (4, 59)
    back = read_demos(path)
    for a, b in zip(episodes, back):
        assert set(a.obs) == set(b.obs)
        for k in a.obs:
            np.testing.assert_array_equal(a.obs[k], b.obs[k])
        np.testing.assert_allclose(a.actions, b.actions)
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_array_equal(a.dones, b.dones)
        assert (b.seed, b.task) == (a.seed, "microwave")
        assert b.attrs["success"] and json.loads(b.attrs["kitchen_offset"])[2] == 0.03
    assert read_env_args(path)["env_name"] == "kitchen/microwave"
    only = read_demos(path, obs_keys=["rgb_right", "proprio"], max_demos=1)
    assert len(only) == 1 and set(only[0].obs) == {"rgb_right", "proprio"}


def test_read_errors_are_specific(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.hdf5"):
        read_demos(tmp_path / "nope.hdf5")
    text = tmp_path / "notes.hdf5"
    text.write_text("hello")
    with pytest.raises(DemoFileError, match="not an HDF5 file"):
        read_demos(text)
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.create_dataset("observations", data=np.zeros((3, 60)))
    with pytest.raises(DemoFileError, match=r"no 'data' group.*observations"):
        read_demos(other)
    path = tmp_path / "demos.hdf5"
    write_demos(path, [_episode()], ENV_ARGS)
    with pytest.raises(DemoFileError, match=r"camera 'default' is not in the file.*'left', 'right'"):
        read_demos(path, obs_keys=["rgb_default"])
    with pytest.raises(DemoFileError, match=r"no key 'joint_vel'.*available obs keys"):
        read_demos(path, obs_keys=["joint_vel"])
    with h5py.File(path, "a") as f:
        del f["data/demo_0/actions"]
    with pytest.raises(DemoFileError, match=r"lacks \['actions'\].*available keys"):
        read_demos(path)


def test_episode_validation():
    ep = _episode()
    with pytest.raises(ValueError, match="length T=6"):
        Episode(obs={"proprio": np.zeros((5, 9))}, actions=ep.actions, rewards=ep.rewards,
                dones=ep.dones, states=ep.states)
    with pytest.raises(ValueError, match="at least one step"):
        Episode(obs={}, actions=np.zeros((0, 9)), rewards=[], dones=[], states=np.zeros((0, 59)))


def test_writer_is_atomic_and_crash_safe(tmp_path):
    path = tmp_path / "out" / "demos.hdf5"
    with pytest.raises(RuntimeError, match="expert crashed"):
        with DemoWriter(path, ENV_ARGS) as writer:
            writer.append(_episode(seed=0))
            assert writer.partial_path.exists() and not path.exists()
            raise RuntimeError("expert crashed")
    assert not path.exists() and not list((tmp_path / "out").glob("demos.hdf5.partial*"))
    # an existing complete file survives a failed rewrite untouched
    write_demos(path, [_episode(seed=0)], ENV_ARGS)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="differ"):
        write_demos(path, [_episode(seed=1), _episode(seed=2, cams=("left",))], ENV_ARGS)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="no episodes"):
        write_demos(tmp_path / "empty.hdf5", [], ENV_ARGS)
    assert not (tmp_path / "empty.hdf5").exists()
    with pytest.raises(ValueError, match="env_name"):
        DemoWriter(tmp_path / "x.hdf5", {"task": "microwave"})


def test_robomimic_sequence_dataset_reads_our_file(tmp_path):
    import robomimic.utils.obs_utils as ObsUtils
    from robomimic.utils.dataset import SequenceDataset

    path = tmp_path / "demos.hdf5"
    episodes = [_episode(6, 0), _episode(5, 1)]
    write_demos(path, episodes, ENV_ARGS, next_obs=True)
    ObsUtils.initialize_obs_utils_with_obs_specs({"obs": {
        "low_dim": ["proprio", "object_state"], "rgb": ["rgb_left"]}})
    ds = SequenceDataset(hdf5_path=str(path), obs_keys=("proprio", "object_state", "rgb_left"),
                         dataset_keys=("actions", "rewards", "dones"), frame_stack=1,
                         seq_length=1, hdf5_cache_mode=None, hdf5_use_swmr=False)
    assert len(ds) == 11
    item = ds[7]  # demo_1, step 1
    np.testing.assert_allclose(item["actions"][0], episodes[1].actions[1], rtol=1e-6)
    np.testing.assert_allclose(item["obs"]["proprio"][0], episodes[1].obs["proprio"][1])
    # robomimic 0.3.0 returns the stored HWC uint8 frames (its models convert them)
    np.testing.assert_array_equal(item["obs"]["rgb_left"][0], episodes[1].obs["rgb_left"][1])
    last = ds[10]  # demo_1, final step
    np.testing.assert_allclose(last["dones"][0], 1.0)


def _classic_paths(lengths=(5, 7), seed=0):
    rng = np.random.default_rng(seed)
    acts = np.random.default_rng(99)
    return [{"images": rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8),
             "observations": np.random.default_rng(t).normal(size=(t, 39)),
             "actions": acts.uniform(-1, 1, (t, 9)), "rewards": np.ones(t)} for t in lengths]


def _dump(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def test_classic_pickle_reader(tmp_path):
    paths = _classic_paths()
    paths[1]["images_top"] = np.zeros((7, 8, 8, 3), np.uint8)
    path = tmp_path / "final_paths_multiview_rb_200" / "left_cap2" / "kitchen_micro_open-v3.pickle"
    _dump(path, paths)
    eps = read_classic_pickle(path)  # camera and task from R3M's folder / file names
    assert [e.num_samples for e in eps] == [5, 7]
    assert eps[0].task == "microwave" and eps[0].cameras == ["left_cap2"]
    np.testing.assert_array_equal(eps[0].obs["rgb_left_cap2"], paths[0]["images"])
    np.testing.assert_allclose(eps[0].obs["proprio"], paths[0]["observations"][:, :9], rtol=1e-6)
    assert eps[1].cameras == ["left_cap2", "top"] and eps[1].dones[-1] == 1
    assert eps[0].states.shape == (5, 39)
    elsewhere = tmp_path / "demos.pickle"
    _dump(elsewhere, paths)
    with pytest.raises(DemoFileError, match="pass camera="):
        read_classic_pickle(elsewhere)
    assert read_classic_pickle(elsewhere, camera="right")[0].cameras == ["right"]
    bad = tmp_path / "bad.pickle"
    _dump(bad, [{"images": paths[0]["images"]}])
    with pytest.raises(DemoFileError, match=r"path 0 lacks \['observations', 'actions'\]"):
        read_classic_pickle(bad, camera="left")
    junk = tmp_path / "junk.pickle"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(DemoFileError, match="not a readable pickle"):
        read_classic_pickle(junk, camera="left")


def test_classic_multiview_merges_cameras_and_round_trips(tmp_path, capsys):
    root = tmp_path / "final_paths_multiview_rb_200"
    for i, cam in enumerate(("default", "left_cap2", "right_cap2")):
        _dump(root / cam / "kitchen_knob1_on-v3.pickle", _classic_paths(seed=i))
    eps = read_classic_multiview(root, "kitchen_knob1_on-v3")
    assert len(eps) == 2 and eps[0].task == "knob"
    assert eps[0].cameras == ["left_cap2", "r3m_default", "right_cap2"]  # R3M's camera names
    np.testing.assert_array_equal(eps[1].obs["rgb_right_cap2"], _classic_paths(seed=2)[1]["images"])
    out = tmp_path / "knob.hdf5"
    write_demos(out, eps, kitchen_env_args("kitchen/knob", eps[0].cameras, 8))
    back = read_demos(out, obs_keys=["rgb_left_cap2", "proprio"])
    np.testing.assert_array_equal(back[1].obs["rgb_left_cap2"], eps[1].obs["rgb_left_cap2"])
    from robot.demo_sources import main

    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["format"], info["demos"], info["total"]) == ("robomimic", 2, 12)
    assert info["obs"]["rgb_left_cap2"] == [[8, 8, 3], "uint8"]
    assert main(["convert", str(root / "left_cap2" / "kitchen_knob1_on-v3.pickle"),
                 str(tmp_path / "left.hdf5")]) == 0
    assert read_demos(tmp_path / "left.hdf5")[0].cameras == ["left_cap2"]
    assert read_env_args(tmp_path / "left.hdf5")["cameras"] == ["left_cap2"]
    _dump(root / "right_cap2" / "kitchen_knob1_on-v3.pickle", _classic_paths((5,), seed=2))
    with pytest.raises(DemoFileError, match="1 demos for camera 'right_cap2'"):
        read_classic_multiview(root, "kitchen_knob1_on-v3")


def _kitchen_trajectory(n=4, seed=0):
    """Real kitchen states: a few random-action steps of the simulator."""
    import envs

    env = envs.make("kitchen/microwave", camera=None, kitchen_noise=0.0, seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    states, actions = [], []
    for _ in range(n):
        states.append(env.get_sim_state())
        actions.append(rng.uniform(-1, 1, 9))
        env.step(actions[-1])
    return np.array(states), np.array(actions), env


@pytest.mark.render
def test_d4rl_reader_replays_and_renders(tmp_path):
    states, actions, env = _kitchen_trajectory(5)
    qpos = states[:, :30]
    observations = np.concatenate([qpos, np.zeros((5, 30))], axis=1)  # [qpos (30), goal (30)]
    path = tmp_path / "kitchen_mini.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = observations
        f["actions"] = actions
        f["rewards"] = np.arange(5.0)
        f["terminals"] = np.array([0, 1, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 1], bool)
    eps = read_d4rl_kitchen(path, cameras=["left", "default"], image_size=32)
    assert [e.num_samples for e in eps] == [2, 3]
    ep = eps[1]
    assert ep.obs["rgb_left"].shape == (3, 32, 32, 3) and ep.obs["rgb_left"].mean() > 30
    assert not np.array_equal(ep.obs["rgb_left"], ep.obs["rgb_default"])
    np.testing.assert_allclose(ep.states[:, :30], qpos[2:])
    np.testing.assert_allclose(ep.obs["proprio"], qpos[2:, :9].astype(np.float32))
    np.testing.assert_allclose(ep.rewards, [2, 3, 4])
    # the replayed frame equals a frame rendered from the same state directly
    env.set_sim_state(np.concatenate([qpos[3], np.zeros(29)]))
    env.sim.set_kitchen_offset(np.zeros(3))
    direct = OffscreenRenderer(env.model, default_render_size(32), 32,
                               mesh_detail=env.mesh_detail).render(env.data, get_camera("left"))
    np.testing.assert_array_equal(ep.obs["rgb_left"][1], direct)
    with h5py.File(tmp_path / "short.hdf5", "w") as f:
        f["observations"] = np.zeros((3, 12))
        f["actions"] = np.zeros((3, 9))
    with pytest.raises(DemoFileError, match=r"\[N, >= 30\]"):
        read_d4rl_kitchen(tmp_path / "short.hdf5")
    # conversion to robomimic streams the same episodes into an atomic file
    assert detect_demo_format(path) == "d4rl"
    out = tmp_path / "converted.hdf5"
    summary = convert_demos(path, out, cameras=["left"], image_size=32, task="mixed",
                            max_episodes=1, progress=False)
    assert summary == {"format": "d4rl", "demos": 1, "samples": 2, "out": str(out),
                       "obs_keys": ["object_state", "proprio", "rgb_left"]}
    (back,) = read_demos(out)
    np.testing.assert_array_equal(back.obs["rgb_left"], eps[0].obs["rgb_left"])
    assert read_env_args(out)["source"] == {"file": str(path), "format": "d4rl"}
    assert detect_demo_format(out) == "robomimic"
    with pytest.raises(DemoFileError, match="no known demo layout"):
        with h5py.File(tmp_path / "odd.hdf5", "w") as f:
            f["stuff"] = np.zeros(2)
        detect_demo_format(tmp_path / "odd.hdf5")


@pytest.mark.render
def test_minari_reader_replays_and_renders(tmp_path):
    states, actions, _ = _kitchen_trajectory(4, seed=1)
    qpos, qvel = states[:, :30], states[:, 30:]
    # FrankaKitchen-v1 observation: robot qpos 9, robot qvel 9, object qpos 21, object qvel 20
    obs59 = np.concatenate([qpos[:, :9], qvel[:, :9], qpos[:, 9:], qvel[:, 9:]], axis=1)
    obs59 = np.concatenate([obs59, obs59[-1:]])  # Minari keeps the final observation too
    path = tmp_path / "main_data.hdf5"
    with h5py.File(path, "w") as f:
        g = f.create_group("episode_0")
        g["observations/observation"] = obs59
        g["observations/achieved_goal/microwave"] = qpos[:, 22:23]
        g["actions"] = actions
        g["rewards"] = np.zeros(4)
        g["terminations"] = np.zeros(4, bool)
        g["truncations"] = np.array([0, 0, 0, 1], bool)
    (ep,) = read_minari_kitchen(path, cameras=["right"], image_size=32)
    np.testing.assert_allclose(ep.states, states)
    assert ep.obs["rgb_right"].shape == (4, 32, 32, 3) and ep.obs["rgb_right"].std() > 10
    d4rl_like = tmp_path / "d4rl_like.hdf5"
    with h5py.File(d4rl_like, "w") as f:
        f["observations"] = np.zeros((2, 60))
    with pytest.raises(DemoFileError, match="no episode_<i> groups"):
        read_minari_kitchen(d4rl_like)


def test_killed_writer_leaves_no_file_at_the_target(tmp_path):
    """A process killed mid-write (no cleanup at all) leaves only its partial file; the next
    writer removes it."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "demos.hdf5"
    script = textwrap.dedent(f"""
        import os, numpy as np
        from robot.demos import DemoWriter, Episode
        w = DemoWriter({str(path)!r}, {{"env_name": "kitchen/microwave"}})
        t = 3
        w.append(Episode(obs={{"proprio": np.zeros((t, 9))}}, actions=np.zeros((t, 9)),
                         rewards=np.zeros(t), dones=np.ones(t), states=np.zeros((t, 59))))
        os._exit(9)  # like SIGKILL: no finally, no atexit
    """)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    leftovers = list(tmp_path.glob("demos.hdf5.partial-*"))
    assert not path.exists() and len(leftovers) == 1
    write_demos(path, [_episode()], ENV_ARGS)  # a rerun removes the dead process' partial file
    assert len(read_demos(path)) == 1 and not list(tmp_path.glob("demos.hdf5.partial*"))


def test_writers_in_different_processes_use_their_own_partial_file(tmp_path):
    """Parallel sweep jobs writing the same path do not share a partial file, and a writer
    leaves the partial file of a process that still runs alone."""
    from robot.demos import partial_path

    path = tmp_path / "shared.hdf5"
    assert partial_path(path, 11) != partial_path(path, 12)
    other = partial_path(path, os.getppid())  # a live process' partial file
    other.write_bytes(b"in progress elsewhere")
    with DemoWriter(path, ENV_ARGS) as writer:
        assert writer.partial_path == partial_path(path) != other
        writer.append(_episode())
    assert len(read_demos(path)) == 1 and other.exists()


def _corrupt_first_chunk(path, key):
    """Overwrite the bytes of the first stored chunk of dataset ``key`` (lzf-compressed frames)."""
    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)


def test_truncated_or_corrupt_files_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "demos.hdf5"
    eps = [_episode(t=12, size=16), _episode(t=12, seed=1, size=16)]
    for ep in eps:  # compressible frames, so their chunks go through the lzf filter
        ep.obs["rgb_left"] = np.zeros_like(ep.obs["rgb_left"])
    write_demos(path, eps, ENV_ARGS)
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted copy
    for read in (read_demos, read_env_args):
        with pytest.raises(DemoFileError, match=r"cut\.hdf5: cannot open the HDF5 file, it is truncated or corrupt"):
            read(cut)
    _corrupt_first_chunk(path, "data/demo_1/obs/rgb_left")
    assert len(read_demos(path, obs_keys=["proprio"])) == 2  # the other keys still read
    with pytest.raises(DemoFileError, match=r"demos\.hdf5: cannot read 'data/demo_1/obs/rgb_left'.*truncated or "
                                            r"corrupt"):
        read_demos(path, obs_keys=["rgb_left"])
