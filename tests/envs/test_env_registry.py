"""Registry and factory errors (no simulator needed for most of these)."""
import pytest

import envs
from envs.registry import register_env

ALL_TASKS = ["bottom_burner", "hinge_cabinet", "kettle", "knob", "light_switch", "microwave",
             "slide_cabinet", "top_burner"]


def test_list_envs_has_every_task():
    assert envs.list_envs("kitchen/*") == [f"kitchen/{t}" for t in ALL_TASKS]
    r3m = ["hinge_cabinet", "knob", "light_switch", "microwave", "slide_cabinet"]  # R3M's five tasks, R3M's reset
    assert envs.list_envs() == sorted([f"kitchen/{t}" for t in ALL_TASKS] + [f"kitchen_r3m/{t}" for t in r3m])
    assert envs.list_envs("kitchen/*burner") == ["kitchen/bottom_burner", "kitchen/top_burner"]


def test_unknown_task_lists_valid_names():
    with pytest.raises(KeyError) as err:
        envs.make("kitchen/oven", camera=None)
    msg = str(err.value)
    assert "kitchen/oven" in msg and "kitchen/microwave" in msg and "kitchen/knob" in msg


def test_unknown_camera_lists_valid_names():
    with pytest.raises(KeyError) as err:
        envs.make("kitchen/microwave", camera="top")
    msg = str(err.value)
    assert "'top'" in msg and all(c in msg for c in ("default", "left", "right"))


def test_list_cameras_and_task_metadata():
    assert envs.list_cameras() == ["default", "left", "right"]
    hinge = envs.get_task("hinge_cabinet")
    assert hinge.joints == ("right_hinge_cabinet",) and hinge.goal == (1.45,)
    assert envs.get_task("microwave").threshold == pytest.approx(0.15 * 2.094, abs=1e-6)
    with pytest.raises(KeyError, match="valid tasks"):
        envs.get_task("dishwasher")


def test_register_env_rejects_duplicate_names():
    @register_env("test/dummy_env_h2")
    def dummy(**kwargs):
        return kwargs

    assert "test/dummy_env_h2" in envs.list_envs("test/*")
    assert envs.make("test/dummy_env_h2", camera=None, seed=3, horizon=7)["horizon"] == 7
    with pytest.raises(ValueError, match="already registered"):
        @register_env("test/dummy_env_h2")
        def other(**kwargs):
            return kwargs


def test_import_is_light():
    """`import envs` must not import mujoco: the GL backend has to be chosen first."""
    import subprocess
    import sys

    code = "import sys, envs, robot.demos; print(sorted({'mujoco', 'h5py', 'gymnasium'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "[]"
