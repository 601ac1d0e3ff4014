"""robot/sweep.py on tiny real cells (encoder=state, 1 demo, a few updates, 1-episode evaluations):
demos and features made once and shared by every cell, per-cell state, resume after SIGKILL,
the Ray launcher on a local Ray instance, and the paper-style table with 1 and 3 seeds."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TINY = {"encoder": "state", "demos": 1, "train.steps": 4, "eval.every": 4, "eval.episodes": 1,
        "eval.heldout_episodes": 1, "eval.videos": 0, "wandb.mode": "disabled"}


def _args(tmp: Path, out: str, **keys) -> list[str]:
    keys = {**TINY, "tasks": "microwave,slide_cabinet", "cameras": "left", "seeds": "0,1", "workers": 2,
            "envs_per_cell": 1, **keys}
    return [f"{k}={v}" for k, v in keys.items()] + [
        f"out={tmp / out}", f"demos.cache_dir={tmp / 'demos'}", f"cache.dir={tmp / 'features'}"]


def _states(out: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "state").glob("*.json"))}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One 2-task x 2-seed sweep, generations of demo files counted."""
    import robot.demo_gen as demo_gen
    from robot.sweep import main

    tmp = tmp_path_factory.mktemp("sweep")
    calls = []
    real = demo_gen.iter_attempts

    def counting(task, *a, **k):
        calls.append(task)
        return real(task, *a, **k)

    demo_gen.iter_attempts = counting
    try:
        rc = main(_args(tmp, "s1"))
        rc_again = main(_args(tmp, "s1"))  # everything done: nothing re-runs
    finally:
        demo_gen.iter_attempts = real
    return tmp, rc, rc_again, calls


def test_each_demo_file_and_feature_set_is_made_once(shared):
    tmp, rc, rc_again, generations = shared
    out = tmp / "s1"
    assert rc == 0 and rc_again == 0
    assert sorted(generations) == ["microwave", "slide_cabinet"]  # one generation per task, none by the cells
    assert sorted(p.name for p in (tmp / "demos").glob("*.hdf5")) == \
        ["microwave_nocam_1demos_224px_seed0_noise0.1.hdf5", "slide_cabinet_nocam_1demos_224px_seed0_noise0.1.hdf5"]
    # encoder=state: one feature set per (task, demo count); seeds share it
    assert len(list((tmp / "features").glob("state-*.npz"))) == 2
    for name in ("microwave_left_1demos_s0", "microwave_left_1demos_s1", "slide_cabinet_left_1demos_s0",
                 "slide_cabinet_left_1demos_s1"):
        res = json.loads((out / "cells" / name / "results.json").read_text())
        assert res["complete"] and res["timing"]["feature_cache_hit"] is True  # the cell computed nothing
        # 1 evaluation x 1 episode x 50 steps on one env process (envs_per_cell=1), timed by part
        split = res["timing"]["eval_split"]
        assert split["env_steps"] == 50 and min(split["env_s"], split["encode_s"], split["policy_s"]) > 0
        assert res["demos"]["path"] == str(tmp / "demos" / f"{name.split('_left')[0]}_nocam_1demos_224px_seed0_noise0.1.hdf5")
    states = _states(out)
    assert {s["status"] for s in states.values()} == {"done"}
    assert all(s["attempts"] == 1 for s in states.values())  # the second call re-ran nothing
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["done"] == 4 and summary["failed"] == 0 and summary["shared"] is None  # 2nd call: no work
    assert (out / "sweep.png").stat().st_size > 0
    table = (out / "table.md").read_text()
    assert "| 1 | left | **mean over tasks** | 2 |" in table and "best_heldout (%)" in table


def test_other_overrides_in_the_same_folder_are_refused(shared):
    from robot.sweep import main

    tmp = shared[0]
    assert main(_args(tmp, "s1") + ["train.lr=0.5"]) == 2
    assert all(s["attempts"] == 1 for s in _states(tmp / "s1").values())


def test_folder_recorded_with_out_dir_resumes_and_old_name_is_accepted(shared):
    """A sweep folder whose cell states record ``out_dir=`` (before the rename) is the same sweep:
    re-running it (here with the old spelling, which warns) re-runs nothing."""
    from robot.sweep import main

    tmp = shared[0]
    for p in (tmp / "s1" / "state").glob("*.json"):
        st = json.loads(p.read_text())
        st["overrides"] = [o.replace("out=", "out_dir=", 1) if o.startswith("out=") else o for o in st["overrides"]]
        assert any(o.startswith("out_dir=") for o in st["overrides"])
        p.write_text(json.dumps(st))
    old = [a.replace("out=", "out_dir=", 1) if a.startswith("out=") else a for a in _args(tmp, "s1")]
    with pytest.warns(FutureWarning, match="robot/sweep.py: out_dir= is deprecated; use out="):
        assert main(old) == 0
    states = _states(tmp / "s1")
    assert {s["status"] for s in states.values()} == {"done"} and all(s["attempts"] == 1 for s in states.values())


def test_cell_keys_and_bad_values_are_refused_before_work(tmp_path):
    from robot.config import ConfigError
    from robot.sweep import split_argv

    with pytest.raises(ConfigError, match="use seeds="):
        split_argv(["seed=3"])
    with pytest.raises(ConfigError, match="set per cell"):
        split_argv(["demos.path=x.hdf5"])
    sweep, cell = split_argv(["cameras=left,right", "demos=5,10", "demos.cache_dir=d", "ray.gpus_per_cell=0.5",
                              "tasks=all", "protocol=r3m"])
    assert sweep == ["cameras=[left,right]", "demos=[5,10]", "ray.gpus_per_cell=0.5", "tasks=all"]
    assert cell == ["demos.cache_dir=d", "protocol=r3m"]


def test_resume_after_sigkill(shared):
    tmp = shared[0]
    out = tmp / "killed"
    args = _args(tmp, "killed", tasks="microwave", workers=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "robot.sweep", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # kill once the first cell is done and the second runs
            st = _states(out) if (out / "state").is_dir() else {}
            if sorted(s["status"] for s in st.values()) == ["done", "running"]:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail(f"no done + running cell within the time limit: {st}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = _states(out)
    done = next(k for k, s in before.items() if s["status"] == "done")
    killed = next(k for k, s in before.items() if s["status"] == "running")
    done_results = (out / "cells" / done / "results.json").read_bytes()
    # the killed sweep's cell died with it: its folder lock is free again
    from egohod.fileio import FolderLock

    t0 = time.time()
    while True:
        try:
            FolderLock(out / "cells" / killed).acquire().release()
            break
        except Exception:
            assert time.time() - t0 < 30, "the cell outlived the killed sweep"
            time.sleep(0.2)
    from robot.sweep import main

    assert main(args) == 0
    after = _states(out)
    assert after[done]["attempts"] == 1 and (out / "cells" / done / "results.json").read_bytes() == done_results
    assert after[killed]["attempts"] == 2 and after[killed]["status"] == "done"
    assert json.loads((out / "cells" / killed / "results.json").read_text())["complete"]


def test_ray_launcher_on_a_local_instance(shared):
    ray = pytest.importorskip("ray")
    from robot.sweep import main

    tmp = shared[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rc = main(_args(tmp, "ray", tasks="microwave", seeds=0, launcher="ray", **{"ray.cpus_per_cell": 1}))
        nodes = ray.nodes()
    finally:
        ray.shutdown()
    assert rc == 0 and len(nodes) == 1
    summary = json.loads((tmp / "ray" / "sweep.json").read_text())
    assert summary["launcher"] == "ray" and summary["done"] == 1
    for s in _states(tmp / "ray").values():
        assert s["status"] == "done" and s["attempts"] == 1


def _run(task, seed, best, final, heldout=None, camera="left", demos=5):
    r = {"env": {"task": task, "camera": camera}, "demos": {"num": demos}, "seed": seed,
         "encoder": {"name": "state"}, "best": {"success_rate": best}, "final": {"success_rate": final}}
    if heldout is not None:
        r["best_heldout"] = {"success_rate": heldout}
    return r


def test_table_with_three_seeds():
    import numpy as np

    from robot.sweep_report import MEAN_OVER_TASKS, markdown_table, table_rows

    runs = [_run("microwave", s, b, f, h) for s, b, f, h in ((0, .5, .4, .3), (1, .7, .6, .5), (2, .9, .8, .7))]
    runs += [_run("slide_cabinet", s, b, f, h) for s, b, f, h in ((0, .1, .1, .1), (1, .3, .2, .2), (2, .2, .0, .0))]
    rows = table_rows(runs, samples=2000)
    micro, slide, mean = rows
    assert (micro["task"], slide["task"], mean["task"]) == ("microwave", "slide_cabinet", MEAN_OVER_TASKS)
    assert micro["best"]["mean"] == pytest.approx(70.0) and micro["best"]["std"] == pytest.approx(20.0)
    lo, hi = micro["best"]["ci95"]
    assert 50.0 <= lo < 70.0 < hi <= 90.0  # a bootstrap of the mean lies within the observed range
    per_seed = [np.mean([50, 10]), np.mean([70, 30]), np.mean([90, 20])]  # mean over tasks, per seed
    assert mean["best"]["mean"] == pytest.approx(np.mean(per_seed))
    assert mean["best"]["std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert mean["best_heldout"]["mean"] == pytest.approx(np.mean([20, 35, 35]))
    table = markdown_table(rows)
    assert "| 5 | left | microwave | 3 | 70.0 ± 20.0 [" in table


def test_table_with_one_seed_has_no_spread():
    from robot.sweep_report import markdown_table, table_rows

    rows = table_rows([_run("microwave", 0, .5, .4), _run("knob", 0, .2, .2)], samples=100)
    assert rows[0]["best"] == {"mean": 20.0, "std": None, "ci95": None, "n": 1}
    assert rows[2]["final"]["mean"] == pytest.approx(30.0) and rows[2]["final"]["std"] is None
    table = markdown_table(rows)
    assert "± 0.0" not in table and "50.0 (1 seed: n/a)" in table
    assert "best_heldout (%)" not in table  # no run carries it: no empty column


def test_mean_over_tasks_names_a_missing_cell():
    from robot.sweep_report import table_rows

    rows = table_rows([_run("microwave", 0, .5, .5), _run("microwave", 1, .7, .7), _run("knob", 0, .1, .1)],
                      samples=100)
    mean = rows[-1]
    assert mean["missing"]["best"] == ["knob (seed 1)"]


def test_r3m_camera_names_are_refused_before_any_demo_is_made(tmp_path, monkeypatch):
    """protocol=r3m with this package's view names: refused by the plan, before demo generation."""
    import robot.run_bc as run_bc
    from robot.config import ConfigError
    from robot.sweep import compose_sweep, plan_sweep, split_argv

    def no_demos(*a, **k):
        raise AssertionError("demos generated before the camera check")

    monkeypatch.setattr(run_bc, "generate_cell_demos", no_demos)
    argv = ["protocol=r3m", "encoder=egovideo_tiny", "tasks=microwave", "demos=1", "seeds=0",
            f"out={tmp_path / 'sw'}", f"demos.cache_dir={tmp_path / 'demos'}"]
    sweep, cell = split_argv(argv + ["cameras=left_cap2,left"])
    with pytest.raises(ConfigError, match="set env.camera=left_cap2"):
        plan_sweep(compose_sweep(sweep), cell)
    sweep, cell = split_argv(argv + ["cameras=left_cap2,right_cap2"])
    plan = plan_sweep(compose_sweep(sweep), cell)
    assert [c.camera for c in plan.cells] == ["left_cap2", "right_cap2"]
    assert "kitchen_r3m" in plan.demo_files["microwave"].name
