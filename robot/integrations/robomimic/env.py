"""The kitchen tasks as a robomimic environment, built by robomimic's own env factory.

A demo file's ``env_args`` (robomimic's ``env_meta``) reads::

    {"env_name": "kitchen/microwave", "type": 101,
     "env_kwargs": {"cameras": ["left"], "image_size": 224, "horizon": 50}, ...}

robomimic 0.3.0 maps ``type`` to an env class in one fixed ``if`` chain
(``robomimic.utils.env_utils.get_env_class``: robosuite 1, gym 2, iGibson 3) and has no
registry; ``gym`` (2) would call the old ``gym.make``, which cannot build these envs and returns
flat observations. :func:`register_env_type` therefore adds the type ``KITCHEN_ENV_TYPE`` to
``EnvType`` and wraps that one function so the type resolves to :class:`EnvKitchen`, leaving
every other type to robomimic. After that, ``EnvUtils.create_env_from_metadata(env_meta)``,
``robomimic/scripts/train.py`` rollouts, ``TrainUtils.run_rollout`` and
``FileUtils.policy_from_checkpoint`` work unchanged. Importing
:mod:`robot.integrations.robomimic` registers it.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Sequence

import numpy as np
import robomimic.envs.env_base as EB
import robomimic.utils.env_utils as EnvUtils
import robomimic.utils.obs_utils as ObsUtils

from robot.demos import KITCHEN_ENV_TYPE, RGB_PREFIX


class EnvKitchen(EB.EnvBase):
    """robomimic's env interface around ``envs.make(env_name, camera=None, ...)``.

    Observations: ``rgb_<camera>`` for the cameras robomimic uses (CHW float in [0, 1] when
    ``postprocess_visual_obs``, else HWC uint8), ``proprio`` [9], ``object_state`` [30];
    the keys of the demo files. Success is the kitchen's own ``info["success"]``.

    Args:
        env_name: a registered kitchen env (``envs.list_envs("kitchen/*")``).
        cameras: cameras of the ``rgb_<camera>`` observations (the demo file's).
        image_size: side of the frames (the demo file's).
        seed: seed of the first ``reset()``; ``None`` draws it from numpy's global RNG, which
            robomimic's train script seeds with ``config.train.seed``.
        kwargs: passed to ``envs.make`` (``horizon``, ``kitchen_noise``, ...).
    """

    def __init__(self, env_name: str, render: bool = False, render_offscreen: bool = False,
                 use_image_obs: bool = False, postprocess_visual_obs: bool = True,
                 cameras: Sequence[str] = ("default",), image_size: int = 224, seed: int | None = None,
                 **kwargs):
        import envs

        self._env_name = env_name
        self._init_kwargs = dict(deepcopy(kwargs), cameras=list(cameras), image_size=int(image_size),
                                 seed=seed)
        self.cameras = list(cameras)
        self.use_image_obs = bool(use_image_obs)
        self.postprocess_visual_obs = bool(postprocess_visual_obs)
        self._seed = seed
        self._seeded = False
        self.env = envs.make(env_name, camera=None, image_size=int(image_size), **kwargs)
        self._obs = None
        self._reward = None
        self._done = None
        self._info: dict = {}

    # ------------------------------------------------------------------ observations
    def _rendered_cameras(self) -> list[str]:
        """Cameras whose frames the policy reads (all of the file's if robomimic has no mapping yet)."""
        if not self.use_image_obs:
            return []
        known = ObsUtils.OBS_KEYS_TO_MODALITIES or {}
        used = [c for c in self.cameras if f"{RGB_PREFIX}{c}" in known]
        return used if known else list(self.cameras)

    def get_observation(self, obs=None):
        obs = self._obs if obs is None else obs
        out = {"proprio": np.asarray(obs["proprio"], np.float32).copy(),
               "object_state": np.asarray(obs["object_state"], np.float32).copy()}
        for cam in self._rendered_cameras():
            frame = self.env.render_camera(cam)
            if self.postprocess_visual_obs:
                frame = ObsUtils.process_frame(frame=frame, channel_dim=3, scale=255.0)
            out[f"{RGB_PREFIX}{cam}"] = frame
        return out

    # ------------------------------------------------------------------ episode
    def reset(self):
        seed = None
        if not self._seeded:
            seed = self._seed if self._seed is not None else int(np.random.randint(2 ** 31 - 1))
            self._seeded = True
        self._obs, self._info = self.env.reset(seed=seed)
        self._reward, self._done = None, False
        return self.get_observation()

    def reset_to(self, state):
        """Set the simulator to ``state["states"]`` (flattened ``[qpos, qvel]``, as in the files)."""
        if self._obs is None or self._done:
            self.reset()
        self.env.set_sim_state(np.asarray(state["states"], dtype=np.float64))
        self._obs = self.env._get_obs()
        return self.get_observation()

    def step(self, action):
        self._obs, reward, terminated, truncated, self._info = self.env.step(np.asarray(action))
        self._reward = float(reward)
        self._done = bool(terminated or truncated)
        return self.get_observation(), self._reward, self._done, dict(self._info)

    def render(self, mode="rgb_array", height=None, width=None, camera_name=None, **kwargs):
        """The frame of ``camera_name`` (default: the first camera) at the env's image size."""
        if mode != "rgb_array":
            raise NotImplementedError("the kitchen renders offscreen only: use mode='rgb_array'")
        return self.env.render_camera(camera_name or (self.cameras[0] if self.cameras else "default"))

    def get_state(self):
        return {"states": self.env.get_sim_state()}

    def get_reward(self):
        return self._reward

    def get_goal(self):
        raise NotImplementedError("kitchen tasks are not goal-conditioned")

    def set_goal(self, **kwargs):
        raise NotImplementedError("kitchen tasks are not goal-conditioned")

    def is_done(self):
        return bool(self._done)

    def is_success(self):
        return {"task": bool(self._info.get("success", False))}

    @property
    def action_dimension(self):
        return int(self.env.action_space.shape[0])

    @property
    def name(self):
        # robomimic puts the name into checkpoint file names ("model_epoch_3_<name>_success_...")
        return self._env_name.replace("/", "-")

    @property
    def type(self):
        return KITCHEN_ENV_TYPE

    def serialize(self):
        return {"env_name": self._env_name, "type": self.type, "env_kwargs": deepcopy(self._init_kwargs)}

    @classmethod
    def create_for_data_processing(cls, env_name, camera_names, camera_height, camera_width,
                                   reward_shaping=False, **kwargs):
        if camera_height != camera_width:
            raise ValueError(f"kitchen frames are square; got {camera_height}x{camera_width}")
        kwargs.pop("image_size", None)
        kwargs.pop("cameras", None)
        return cls(env_name=env_name, use_image_obs=bool(camera_names), postprocess_visual_obs=False,
                   cameras=list(camera_names), image_size=camera_height, **kwargs)

    @property
    def rollout_exceptions(self):
        return ()

    def close(self):
        self.env.close()

    def __repr__(self):
        return f"EnvKitchen({self._env_name}, cameras={self.cameras}, kwargs={self._init_kwargs})"


_ORIGINAL_GET_ENV_CLASS = EnvUtils.get_env_class


def _get_env_class(env_meta=None, env_type=None, env=None):
    if EnvUtils.get_env_type(env_meta=env_meta, env_type=env_type, env=env) == KITCHEN_ENV_TYPE:
        return EnvKitchen
    return _ORIGINAL_GET_ENV_CLASS(env_meta=env_meta, env_type=env_type, env=env)


def register_env_type() -> None:
    """Make robomimic's env factory build :class:`EnvKitchen` for ``type == KITCHEN_ENV_TYPE``
    (idempotent)."""
    EB.EnvType.EGOHOD_KITCHEN_TYPE = KITCHEN_ENV_TYPE
    EnvUtils.get_env_class = _get_env_class
