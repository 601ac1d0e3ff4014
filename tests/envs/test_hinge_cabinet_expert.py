"""The hinge_cabinet fork-push expert and its rate-limited IK (state only, no rendering)."""
import mujoco
import numpy as np
import pytest

import envs
from envs.experts import make_expert
from envs.experts.hinge_cabinet import HingeCabinetExpert
from envs.experts.kinematics import FINGER_OPEN, Pose
from envs.experts.rate_ik import bounded_dls_step, solve_ik_rate_limited

# seeds solved in the measured 100-seed evaluations (README); 1 and 2 are among the farther
# kitchens (shifted away from the robot), 103 is outside the seeds the parameters were chosen on
SOLVED = (1, 2, 103)


@pytest.fixture(scope="module")
def env():
    e = envs.make("kitchen/hinge_cabinet", camera=None)
    yield e
    e.close()


def _door(env) -> float:
    m, d = env.unwrapped.model, env.unwrapped.data
    j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "right_hinge_cabinet")
    return float(d.qpos[m.jnt_qposadr[j]])


def test_bounded_dls_step_matches_dls_inside_the_box_and_clips_outside():
    rng = np.random.default_rng(0)
    jac, err = rng.normal(size=(6, 7)), rng.normal(size=6)
    free = np.linalg.solve(jac.T @ jac + 0.01 * np.eye(7), jac.T @ err)
    wide = bounded_dls_step(jac, err, -np.full(7, 1e3), np.full(7, 1e3), 0.1)
    np.testing.assert_allclose(wide, free, atol=1e-9)
    bound = 0.5 * np.abs(free).max()
    tight = bounded_dls_step(jac, err, -np.full(7, bound), np.full(7, bound), 0.1)
    assert np.abs(tight).max() <= bound + 1e-12
    assert (np.abs(tight) > bound - 1e-9).any()  # something sits on the bound
    # the free joints make up for the clipped ones: closer to the target than plain clipping
    assert np.linalg.norm(jac @ tight - err) < np.linalg.norm(jac @ np.clip(free, -bound, bound) - err)
    with pytest.raises(ValueError, match="shape"):
        bounded_dls_step(jac, err, np.zeros(3), np.ones(3), 0.1)


def test_rate_limited_ik_stays_in_the_box_and_leaves_the_sim_alone(env):
    env.reset(seed=0)
    expert = make_expert("hinge_cabinet")
    expert.reset(env)
    kin, data = expert.scene.kin, expert.scene.data
    state = env.unwrapped.get_sim_state().copy()
    q0 = data.qpos[kin.arm_qpos].copy()
    here = kin.ee_pose(data)
    near = Pose(here.pos + np.array([0.0, 0.01, 0.0]), here.rot)
    far = Pose(here.pos + np.array([0.0, 0.3, 0.2]), here.rot)
    q_near = solve_ik_rate_limited(kin, data, near, 0.064)
    q_far = solve_ik_rate_limited(kin, data, far, 0.064)
    for q in (q_near, q_far):
        assert np.abs(q - q0).max() <= 0.064 + 1e-9
    scratch = mujoco.MjData(env.unwrapped.model)
    scratch.qpos[:] = data.qpos
    scratch.qpos[kin.arm_qpos] = q_near
    mujoco.mj_kinematics(env.unwrapped.model, scratch)
    assert np.linalg.norm(kin.ee_pose(scratch).pos - near.pos) < 2e-3  # a 1 cm move fits in one step
    np.testing.assert_array_equal(env.unwrapped.get_sim_state(), state)
    with pytest.raises(ValueError, match="step_bound"):
        solve_ik_rate_limited(kin, data, near, -0.1)


@pytest.mark.parametrize("seed", SOLVED)
def test_expert_opens_the_door_with_open_fingers(env, seed):
    obs, info = env.reset(seed=seed)
    expert = make_expert("hinge_cabinet")
    assert isinstance(expert, HingeCabinetExpert)
    expert.reset(env)
    switched = None
    for t in range(50):
        action = expert.act(env)
        if switched is None and expert.phase == "push":
            switched = t
            across, along, height = expert._bar_in_hand(expert.scene)
            assert abs(across) < expert.engage_across and abs(along) < expert.engage_along and height > 0
            assert _door(env) < 0.15  # the door is still (nearly) closed when the push starts
        obs, reward, terminated, truncated, info = env.step(action)
        # the fingers are never closed on the bar: they stay (nearly) fully open all episode
        assert np.all(env.unwrapped.data.qpos[expert.scene.kin.finger_qpos] > FINGER_OPEN - 0.008), t
    assert switched is not None and switched < 35, expert.state.log
    assert info["success"], (seed, _door(env), expert.state.log)
    assert _door(env) > 1.2145


def test_bar_lookup_rejects_a_site_without_a_handle(env):
    env.reset(seed=0)
    expert = make_expert("hinge_cabinet")
    expert.reset(env)
    assert expert._bar_half_length(expert.scene) == pytest.approx(0.16)
    expert.site = "knob1_site"
    with pytest.raises(ValueError, match="no cylindrical handle bar at site 'knob1_site'"):
        expert._bar_half_length(expert.scene)
