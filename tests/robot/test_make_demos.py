"""robot/make_demos.py: expert demos end to end (one and two cameras), robomimic's reader,
reuse of a matching file, worker-count independence, crash safety and bad input."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot.demos import read_demos, read_env_args
from robot.demo_gen import generate_demos, summary_table

REPO = Path(__file__).resolve().parents[2]
TASK = "light_switch"  # the quickest expert


def _check_episode(ep, cameras, size):
    t = ep.num_samples
    assert t == 50
    for cam in cameras:
        frames = ep.obs[f"rgb_{cam}"]
        assert frames.shape == (t, size, size, 3) and frames.dtype == np.uint8
        assert frames.std() > 5  # a rendered scene, not a blank frame
    assert ep.obs["proprio"].shape == (t, 9)
    assert ep.obs["object_state"].shape == (t, 30)
    assert ep.states.shape == (t, 59)
    np.testing.assert_allclose(ep.obs["proprio"], ep.states[:, :9], atol=1e-6)
    assert ep.actions.shape == (t, 9) and np.abs(ep.actions).max() <= 1.0
    assert ep.dones[-1] == 1 and ep.dones[:-1].sum() == 0
    assert ep.rewards.sum() > 5  # solved at more than 5 steps: a successful episode
    assert ep.attrs["success"] is True or ep.attrs["success"] == 1
    assert ep.task == TASK


@pytest.mark.render
def test_one_camera_end_to_end_and_robomimic_reader(tmp_path):
    out = tmp_path / "one.hdf5"
    path, stats = generate_demos(TASK, ["left"], num_demos=2, image_size=64, seed=0, workers=1,
                                 out=out, progress=False, return_stats=True)
    assert Path(path) == out and out.exists() and not list(out.parent.glob(out.name + ".partial*"))
    eps = read_demos(out)
    assert len(eps) == 2 and [e.seed for e in eps] == sorted(e.seed for e in eps)
    for ep in eps:
        _check_episode(ep, ["left"], 64)
    assert stats.kept == 2 and stats.attempts >= 2
    args = read_env_args(out)
    assert args["env_name"] == f"kitchen/{TASK}" and args["cameras"] == ["left"]
    assert args["image_size"] == 64 and args["generator"]["first_seed"] == 0
    table = summary_table(stats)
    assert "| light_switch | left | 2 |" in table

    import robomimic.utils.obs_utils as ObsUtils
    from robomimic.utils.dataset import SequenceDataset

    ObsUtils.initialize_obs_utils_with_obs_specs(
        {"obs": {"low_dim": ["proprio", "object_state"], "rgb": ["rgb_left"]}})
    ds = SequenceDataset(hdf5_path=str(out), obs_keys=("proprio", "object_state", "rgb_left"),
                         dataset_keys=("actions", "rewards", "dones"), seq_length=1,
                         hdf5_cache_mode=None, hdf5_use_swmr=False, load_next_obs=False)
    assert len(ds) == 100
    item = ds[53]  # demo_1, step 3
    np.testing.assert_allclose(item["actions"][0], eps[1].actions[3])
    np.testing.assert_array_equal(item["obs"]["rgb_left"][0], eps[1].obs["rgb_left"][3])

    # the same request reuses the file; another image size is refused; overwrite regenerates
    mtime = out.stat().st_mtime_ns
    assert generate_demos(TASK, ["left"], num_demos=2, image_size=64, seed=0, out=out, progress=False) == out
    assert out.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="image_size: file has 64, requested 32"):
        generate_demos(TASK, ["left"], num_demos=2, image_size=32, seed=0, out=out, progress=False)


@pytest.mark.render
def test_two_cameras_in_one_file(tmp_path):
    out = tmp_path / "two.hdf5"
    generate_demos(TASK, ["left", "right"], num_demos=2, image_size=64, seed=0, out=out, progress=False)
    eps = read_demos(out)
    assert len(eps) == 2 and eps[0].cameras == ["left", "right"]
    for ep in eps:
        _check_episode(ep, ["left", "right"], 64)
        assert not np.array_equal(ep.obs["rgb_left"], ep.obs["rgb_right"])
    assert read_env_args(out)["cameras"] == ["left", "right"]


def test_state_only_demos_do_not_depend_on_worker_count(tmp_path):
    one = generate_demos(TASK, [], num_demos=2, seed=5, workers=1, out=tmp_path / "w1.hdf5", progress=False)
    two = generate_demos(TASK, [], num_demos=2, seed=5, workers=2, out=tmp_path / "w2.hdf5", progress=False)
    a, b = read_demos(one), read_demos(two)
    # file_lock removes its lock file: only the two demo files are left (no 0-byte .lock)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1.hdf5", "w2.hdf5"]
    assert generate_demos(TASK, [], num_demos=2, seed=5, out=one, progress=False) == one  # reused
    assert not list(tmp_path.glob("*.lock"))
    assert [e.seed for e in a] == [e.seed for e in b]
    assert set(a[0].obs) == {"proprio", "object_state"}
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.states, y.states)


def test_bad_requests_fail_before_any_work(tmp_path):
    out = tmp_path / "x.hdf5"
    with pytest.raises(ValueError, match="unknown task 'toaster'.*microwave"):
        generate_demos("toaster", ["left"], 1, out=out, progress=False)
    with pytest.raises(ValueError, match="unknown camera 'top'.*left"):
        generate_demos(TASK, ["top"], 1, out=out, progress=False)
    with pytest.raises(ValueError, match="num_demos must be >= 1"):
        generate_demos(TASK, [], 0, out=out, progress=False)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        generate_demos(TASK, [], 1, workers=0, out=out, progress=False)
    assert not out.exists()


def test_too_many_failures_write_nothing(tmp_path):
    out = tmp_path / "fail.hdf5"
    # three control steps cannot solve the task: every attempt fails
    with pytest.raises(RuntimeError, match="only 0/1 successful light_switch episodes in 2 attempts"):
        generate_demos(TASK, [], 1, horizon=3, max_attempts=2, out=out, progress=False)
    assert not out.exists() and not list(out.parent.glob(out.name + ".partial*"))
    assert not list(out.parent.glob("*.lock"))  # the lock is removed on failure too


def test_killed_run_leaves_no_file(tmp_path):
    out = tmp_path / "killed.hdf5"
    code = (f"from robot.demo_gen import generate_demos; "
            f"generate_demos({TASK!r}, [], 200, out={str(out)!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob(out.name + ".partial-*")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert list(tmp_path.glob(out.name + ".partial-*")), "the generator never started writing"
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not out.exists()


def test_hydra_cli(tmp_path):
    out = tmp_path / "cli.hdf5"
    script = REPO / "robot" / "make_demos.py"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    ok = subprocess.run([sys.executable, str(script), f"task={TASK}", "num_demos=1", f"out={out}"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"| {TASK} | none | 1 |" in ok.stdout
    assert len(read_demos(out)) == 1
    bad = subprocess.run([sys.executable, str(script), f"task={TASK}", "num_demo=1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "num_demo" in bad.stderr
    cam = subprocess.run([sys.executable, str(script), f"task={TASK}", "camera=top", f"out={out}x"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert cam.returncode == 2 and "unknown camera 'top'" in cam.stderr


def test_changed_task_or_expert_makes_the_cache_stale(tmp_path, monkeypatch):
    import dataclasses

    import envs.kitchen_tasks as kt
    import robot.demo_gen as md

    out = tmp_path / "cache.hdf5"
    generate_demos(TASK, [], num_demos=1, seed=0, out=out, progress=False)
    fp = read_env_args(out)["generator"]["fingerprint"]
    assert set(fp) == {"task", "expert"} and fp == md.definition_fingerprint(TASK)
    mtime = out.stat().st_mtime_ns
    assert generate_demos(TASK, [], num_demos=1, seed=0, out=out, progress=False) == out
    assert out.stat().st_mtime_ns == mtime  # unchanged definition: reused

    # another threshold in the task definition changes the fingerprint: refused, or regenerated
    changed = dataclasses.replace(kt.TASKS[TASK], threshold=kt.TASKS[TASK].threshold * 0.5)
    monkeypatch.setitem(kt.TASKS, TASK, changed)
    new_fp = md.definition_fingerprint(TASK)
    assert new_fp["task"] != fp["task"] and new_fp["expert"] == fp["expert"]
    with pytest.raises(md.StaleDemosError, match="stale: it was made for another task definition"):
        generate_demos(TASK, [], num_demos=1, seed=0, out=out, progress=False)
    assert out.stat().st_mtime_ns == mtime
    generate_demos(TASK, [], num_demos=1, seed=0, out=out, progress=False, regenerate_stale=True)
    assert read_env_args(out)["generator"]["fingerprint"] == new_fp
    monkeypatch.undo()

    # edited expert code: another expert hash
    src = tmp_path / "experts"
    src.mkdir()
    for f in md.EXPERT_SOURCE_DIR.glob("*.py"):
        (src / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(md, "EXPERT_SOURCE_DIR", src)
    assert md.definition_fingerprint(TASK) == fp
    (src / "evaluate.py").write_text("# not expert code\n")
    assert md.definition_fingerprint(TASK) == fp
    with open(src / "base.py", "a") as fh:
        fh.write("\n# a changed expert\n")
    assert md.definition_fingerprint(TASK)["expert"] != fp["expert"]
    with pytest.raises(ValueError, match="by another version of the expert code"):
        generate_demos(TASK, [], num_demos=1, seed=0, out=out, progress=False)


def test_two_processes_asking_for_one_file_generate_it_once(tmp_path):
    """Parallel sweep jobs sharing the demo cache: the second waits for the first and reuses its file."""
    out = tmp_path / "shared.hdf5"
    code = (f"from robot.demo_gen import generate_demos; "
            f"_, st = generate_demos({TASK!r}, [], 2, out={str(out)!r}, progress=False, return_stats=True); "
            f"print('REUSED' if st.reused else 'GENERATED')")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["GENERATED", "REUSED"]
    assert len(read_demos(out)) == 2 and not list(tmp_path.glob("shared.hdf5.partial*"))


def test_action_noise_records_the_expert_action_and_is_reproducible(tmp_path):
    """DART demos: the env executes expert action + seeded noise, the file records the expert's
    action (replaying recorded action + the seed's noise reproduces the recorded states)."""
    import envs
    from envs.experts import make_expert
    from robot.demo_gen import N_ACTION, record_episode

    env, expert = envs.make(f"kitchen/{TASK}", camera=None), make_expert(TASK)
    plain, _ = record_episode(env, expert, 3, [], 20)
    noisy, _ = record_episode(env, expert, 3, [], 20, action_noise=0.1)
    again, _ = record_episode(env, expert, 3, [], 20, action_noise=0.1)
    np.testing.assert_array_equal(noisy.states, again.states)
    assert np.abs(noisy.states[5:] - plain.states[5:]).max() > 1e-3  # the noise changed the trajectory
    noise = np.random.default_rng([3, 0xDA27]).normal(0.0, 1.0, (20, N_ACTION)) * 0.1
    env.reset(seed=3)
    for t in range(20):
        np.testing.assert_allclose(env.unwrapped.get_sim_state(), noisy.states[t], atol=1e-9)
        env.step(np.clip(noisy.actions[t] + noise[t], -1, 1).astype(np.float32))
    out = tmp_path / "noisy.hdf5"
    generate_demos(TASK, [], 1, out=out, action_noise=0.1, progress=False)
    assert read_env_args(out)["generator"]["action_noise"] == 0.1
    with pytest.raises(Exception, match="action_noise|different request|overwrite"):
        generate_demos(TASK, [], 1, out=out, action_noise=0.0, progress=False)
