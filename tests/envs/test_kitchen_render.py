"""Rendering: frames, cameras, determinism, fast-renderer settings, vectorised envs."""
import numpy as np
import pytest

import envs
from envs.renderer import center_crop

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def left_env():
    env = envs.make("kitchen/microwave", camera="left", image_size=224, seed=0)
    yield env
    env.close()


def test_rgb_observation_is_a_real_frame(left_env):
    obs, _ = left_env.reset(seed=0)
    rgb = obs["rgb"]
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    assert left_env.observation_space["rgb"].contains(rgb)
    assert rgb.mean() > 30 and rgb.std() > 20  # not black, not flat
    # the offscreen buffer is sized to the frame, no multisampling
    vis = left_env.model.vis
    assert (vis.global_.offwidth, vis.global_.offheight) == (256, 256)
    assert vis.quality.offsamples == 0


def test_cameras_differ_and_model_cameras_render(left_env):
    left_env.reset(seed=0)
    frames = {c: left_env.render_camera(c) for c in ("default", "left", "right", "left_cap")}
    names = list(frames)
    for i, a in enumerate(names):
        assert frames[a].mean() > 30, a
        for b in names[i + 1:]:
            assert np.abs(frames[a].astype(int) - frames[b]).mean() > 10, (a, b)
    with pytest.raises(KeyError, match="valid cameras"):
        left_env.render_camera("ceiling")


def test_frames_follow_the_simulation(left_env):
    obs0, _ = left_env.reset(seed=0)
    for _ in range(3):
        obs, *_ = left_env.step(np.full(9, 0.8))
    assert np.abs(obs["rgb"].astype(int) - obs0["rgb"]).mean() > 0.5


def test_same_seed_same_frames_two_envs_one_process(left_env):
    other = envs.make("kitchen/microwave", camera="left", image_size=224, seed=0)
    a, _ = left_env.reset(seed=4)
    b, _ = other.reset(seed=4)
    np.testing.assert_array_equal(a["rgb"], b["rgb"])
    np.testing.assert_array_equal(a["state"], b["state"])
    c, _ = other.reset(seed=5)
    assert np.abs(a["rgb"].astype(int) - c["rgb"]).mean() > 0.5  # kitchen offset differs
    other.close()


def test_image_size_and_crop():
    env = envs.make("kitchen/knob", camera="default", image_size=96, render_size=128, seed=0)
    obs, _ = env.reset()
    assert obs["rgb"].shape == (96, 96, 3)
    frame = np.arange(5 * 7 * 3).reshape(5, 7, 3)
    np.testing.assert_array_equal(center_crop(frame, 3), frame[1:4, 2:5])
    with pytest.raises(ValueError, match="larger"):
        center_crop(frame, 6)
    env.close()


def test_fast_renderer_settings_are_in_use(left_env):
    """What makes CPU rendering fast, checked as settings (no timing: bench/kitchen_render.py
    measures the rates): buffer at the render size, no multisampling, no shadows or reflections,
    coarse tessellation, the arm's meshes decimated."""
    import mujoco

    from envs.renderer import FAST_NUMQUADS, FAST_NUMSLICES, FAST_NUMSTACKS

    left_env.reset(seed=0)
    q = left_env.model.vis.quality
    assert (q.offsamples, q.shadowsize) == (0, 0)
    assert (q.numslices, q.numstacks, q.numquads) == (FAST_NUMSLICES, FAST_NUMSTACKS, FAST_NUMQUADS) == (12, 8, 1)
    renderer = left_env.unwrapped._renderer
    assert (renderer.render_size, renderer.image_size) == (256, 224)
    flags = renderer._renderer.scene.flags
    assert not flags[mujoco.mjtRndFlag.mjRND_SHADOW] and not flags[mujoco.mjtRndFlag.mjRND_REFLECTION]
    assert renderer.mesh_stats is not None and renderer.mesh_stats["faces_after"] < renderer.mesh_stats["faces_before"]


def test_make_vec_one_renderer_per_process():
    vec = envs.make_vec("kitchen/microwave", 2, camera="right", image_size=64,
                        render_size=64, seeds=[0, 1])
    try:
        obs, info = vec.reset()
        assert obs["rgb"].shape == (2, 64, 64, 3) and obs["state"].shape == (2, 59)
        assert obs["rgb"][0].mean() > 30 and obs["rgb"][1].mean() > 30
        assert not np.array_equal(obs["state"][0], obs["state"][1])
        obs, reward, term, trunc, info = vec.step(np.zeros((2, 9)))
        assert reward.shape == (2,) and "success" in info
    finally:
        vec.close()


def test_light_meshes_keep_frames_and_physics():
    """The arm's lighter visual meshes change frames imperceptibly and physics not at all."""
    fast = envs.make("kitchen/microwave", camera="left", image_size=96, seed=2)
    full = envs.make("kitchen/microwave", camera="left", image_size=96, seed=2, mesh_detail=1.0)
    blind = envs.make("kitchen/microwave", camera=None, seed=2)
    obs_fast, _ = fast.reset()
    obs_full, _ = full.reset()
    blind.reset()
    stats = fast._renderer.mesh_stats
    assert stats["meshes_decimated"] >= 8 and stats["faces_after"] < 0.3 * stats["faces_before"]
    assert full._renderer.mesh_stats is None
    diff = np.abs(obs_fast["rgb"].astype(int) - obs_full["rgb"]).mean()
    assert 0 < diff < 3.0, diff
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, 9)
        s_fast = fast.step(a)[0]["state"]
        s_blind = blind.step(a)[0]["state"]
        full.step(a)
        np.testing.assert_array_equal(s_fast, s_blind)
    fast.close()
    full.close()
