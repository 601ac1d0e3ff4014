"""Single-task Franka Kitchen gymnasium environment (the classic R3M protocol on mujoco 3).

Observation (a dict):

- ``rgb``: uint8 ``[image_size, image_size, 3]`` from ``camera`` (absent when ``camera=None``,
  then nothing is rendered and stepping runs at simulator speed);
- ``proprio``: float32 ``[9]``, the 7 arm + 2 finger joint positions (the classic proprioception);
- ``state``: float64 ``[59]``, the full simulator state ``[qpos (30), qvel (29)]``;
- ``object_state``: float32 ``[30]``, the object state for state-based baselines
  (``env.task_state_index`` / :func:`task_state_index` pick the entries of the env's task:
  its joint(s) and 21:30):

  | slice   | content                                                                 |
  | ------- | ----------------------------------------------------------------------- |
  | 0:21    | object joint positions ``qpos[9:30]`` (knobs+burners, light, cabinets, microwave, kettle pose) |
  | 21:24   | end-effector position (site ``end_effector``, world frame, m)           |
  | 24:27   | the task's interaction site position (``env.task.site``, world frame)   |
  | 27:30   | interaction site minus end-effector position                            |

Action: 9 joint velocities in ``[-1, 1]`` (FrankaKitchen-v1 semantics, see ``envs.kitchen_sim``).
One step = 40 substeps of 0.002 s = 0.08 s (12.5 Hz). Episodes are truncated after ``horizon``
(50) steps and never terminate early unless ``terminate_on_success=True``.

Reward is sparse: 1.0 at steps where the task is solved (``||q_task - goal|| < threshold``).
``info``: ``is_solved`` (this step), ``solved_steps`` (count so far), ``success`` (solved at more
than 5 steps so far: the classic episode success), ``task_distance``, ``kitchen_offset``,
``num_disturbed`` (other articulated objects moved by >= 0.15 x their range; names from
``env.disturbed_joints()``; they fail the step only with ``strict_success=True``).

Replay: ``get_sim_state()`` / ``set_sim_state(flat)`` read and write ``[qpos, qvel]``; the kitchen
offset is part of the model, not of that state: it is drawn by ``reset(seed=...)`` and can be set
with ``set_kitchen_offset``. The MuJoCo ``model`` and ``data`` are ``env.model`` / ``env.data``
(also reachable as ``env.unwrapped.model``); ``env.sim`` holds the helpers (joint indices, site
positions, control law).
"""
from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.cameras import CameraSpec, get_camera
from envs.kitchen_sim import FRAME_SKIP, N_ROBOT, KitchenSim
from envs.kitchen_tasks import (ARTICULATED_OBJECT_JOINTS, CLASSIC_THRESHOLD_FRACTION,
                                 SUCCESS_MIN_STEPS, KitchenTask)
from envs.renderer import default_render_size

DEFAULT_HORIZON = 50
# Fraction of the Franka arm's visual triangles rendered (envs.mesh_lod): 0.15 looks the same at
# 224 px and makes CPU rendering ~1.6x faster; 1.0 renders the original meshes. Physics unaffected.
DEFAULT_MESH_DETAIL = 0.15
OBJECT_STATE_DIM = 30


class KitchenTaskEnv(gym.Env):
    """One Franka Kitchen task with the classic randomisation, cameras and success signal.

    Args:
        task: the task record (``envs.get_task(name)``); use ``envs.make`` rather than this class.
        camera: camera of ``obs["rgb"]`` (``envs.list_cameras()`` or a model camera); ``None``
            renders nothing.
        image_size: side of the square ``rgb`` frames.
        render_size: side rendered before the centre crop (default ``image_size * 256 / 224``).
        seed: seed of the first ``reset()`` without an explicit seed.
        horizon: control steps per episode (truncation).
        frame_skip: simulator substeps per control step (40: 12.5 Hz, as FrankaKitchen-v1).
        kitchen_noise: half-width of the uniform kitchen offset per axis (m); 0 disables.
        joint_noise: robot joint noise on reset as a fraction of each joint's range; 0 disables.
        obs_noise: FrankaKitchen-v1-style noise on the joint readings the velocity servo uses
            (``robot_noise_ratio``; 0.01 there, 0 here by default). ``proprio`` is noise-free.
        terminate_on_success: end the episode once ``info["success"]`` is true.
        render_mode: ``"rgb_array"`` makes :meth:`render` return the ``camera`` frame.
        mesh_detail: fraction of the arm's visual triangles rendered (``envs.mesh_lod``).
        strict_success: also require the other articulated objects to stay where they started
            (mj_envs' strict ``solved``; see ``envs.kitchen_tasks``).
        init_pose: ``"frankakitchen_v1"`` (this model's keyframe, gripper open) or ``"r3m"``
            (mj_envs' ``key_qpos[1]``); see ``envs.kitchen_sim``.
        desk_max_contacts: redraw the desk offset while the initial state has more contacts
            (R3M: 4); ``None`` keeps the first draw.
        kettle_follows_desk: move the kettle with the desk offset (R3M: it stays).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 12.5}

    def __init__(
        self,
        task: KitchenTask,
        camera: str | None = "default",
        image_size: int = 224,
        render_size: int | None = None,
        seed: int | None = None,
        horizon: int = DEFAULT_HORIZON,
        frame_skip: int = FRAME_SKIP,
        kitchen_noise: float = 0.1,
        joint_noise: float = 0.05,
        obs_noise: float = 0.0,
        terminate_on_success: bool = False,
        render_mode: str | None = None,
        mesh_detail: float = DEFAULT_MESH_DETAIL,
        strict_success: bool = False,
        init_pose: str = "frankakitchen_v1",
        desk_max_contacts: int | None = None,
        kettle_follows_desk: bool = True,
    ):
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if kitchen_noise < 0 or joint_noise < 0 or obs_noise < 0:
            raise ValueError("kitchen_noise, joint_noise and obs_noise must be >= 0, got "
                             f"{kitchen_noise}, {joint_noise}, {obs_noise}")
        if not 0.0 < mesh_detail <= 1.0:
            raise ValueError(f"mesh_detail must be in (0, 1], got {mesh_detail}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if render_size is None:
            render_size = default_render_size(image_size)  # 224 -> 256, keeps the crop ratio
        if render_size < image_size:
            raise ValueError(f"render_size {render_size} must be >= image_size {image_size}")
        self.task = task
        self.camera_spec: CameraSpec | None = get_camera(camera) if camera is not None else None
        self.camera = camera
        self.image_size = int(image_size)
        self.render_size = int(render_size)
        self.horizon = int(horizon)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode = render_mode
        self.mesh_detail = float(mesh_detail)
        self.default_seed = seed
        self.sim = KitchenSim(frame_skip=frame_skip, kitchen_noise=kitchen_noise,
                              joint_noise=joint_noise, obs_noise=obs_noise, init_pose=init_pose,
                              desk_max_contacts=desk_max_contacts,
                              kettle_follows_desk=kettle_follows_desk)
        self._task_idx = self.sim.joint_qpos_indices(task.joints)
        self._task_site = self.sim.site_id(task.site)
        self.strict_success = bool(strict_success)
        others = [j for j in ARTICULATED_OBJECT_JOINTS if j not in task.joints]
        self._other_names = tuple(others)
        self._other_idx = self.sim.joint_qpos_indices(others)
        ranges = np.array([self.model.jnt_range[self.sim.joint_id(j)] for j in others])
        self._other_tol = CLASSIC_THRESHOLD_FRACTION * (ranges[:, 1] - ranges[:, 0])
        self._other_start = np.zeros(len(others))
        self._renderer = None
        self._steps = 0
        self._solved_steps = 0
        self._needs_reset = True
        self._seeded_once = False

        obs_spaces = {
            "proprio": spaces.Box(-np.inf, np.inf, (N_ROBOT,), np.float32),
            "state": spaces.Box(-np.inf, np.inf, (self.sim.state_dim,), np.float64),
            "object_state": spaces.Box(-np.inf, np.inf, (OBJECT_STATE_DIM,), np.float32),
        }
        if self.camera_spec is not None:
            obs_spaces["rgb"] = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, (N_ROBOT,), np.float32)

    # ---------------------------------------------------------------- accessors
    @property
    def model(self):
        return self.sim.model

    @property
    def data(self):
        return self.sim.data

    @property
    def dt(self) -> float:
        return self.sim.dt

    @property
    def kitchen_offset(self) -> np.ndarray:
        return self.sim.kitchen_offset.copy()

    def goal(self) -> np.ndarray:
        """The task goal in the current (possibly offset) kitchen."""
        goal = self.task.goal_array.copy()
        if self.task.goal_moves_with_kitchen:
            goal[:3] += self.sim.kitchen_offset
        return goal

    def task_qpos(self) -> np.ndarray:
        return self.data.qpos[self._task_idx].copy()

    @property
    def task_state_index(self) -> tuple[int, ...]:
        """Indices of ``object_state`` that concern this env's task: the task joints' positions,
        then end effector, task site and their difference (``object_state[21:30]``). The other
        objects' joints only carry the episode's reset noise."""
        return tuple(int(i) - N_ROBOT for i in self._task_idx) + tuple(range(21, OBJECT_STATE_DIM))

    def task_distance(self) -> float:
        return float(np.linalg.norm(self.task_qpos() - self.goal()))

    def disturbed_joints(self) -> list[str]:
        """Other articulated object joints moved by more than 0.15 x their range this episode."""
        moved = np.abs(self.data.qpos[self._other_idx] - self._other_start) >= self._other_tol
        return [name for name, m in zip(self._other_names, moved) if m]

    def is_solved(self) -> bool:
        """Task joints within the threshold of the goal (and, if strict, nothing else moved)."""
        if self.task_distance() >= self.task.threshold:
            return False
        return not (self.strict_success and self.disturbed_joints())

    def get_sim_state(self) -> np.ndarray:
        return self.sim.get_state()

    def set_sim_state(self, flat: np.ndarray) -> None:
        self.sim.set_state(flat)

    def set_kitchen_offset(self, offset) -> None:
        self.sim.set_kitchen_offset(offset)

    # ---------------------------------------------------------------- observations
    def object_state(self) -> np.ndarray:
        ee = self.sim.end_effector_pos()
        site = self.data.site_xpos[self._task_site].copy()
        return np.concatenate([self.data.qpos[N_ROBOT:], ee, site, site - ee]).astype(np.float32)

    def _ensure_renderer(self):
        if self._renderer is None:
            from envs.renderer import OffscreenRenderer

            self._renderer = OffscreenRenderer(self.model, self.render_size, self.image_size,
                                               mesh_detail=self.mesh_detail)
        return self._renderer

    def render_camera(self, name: str) -> np.ndarray:
        """Render the current state from any protocol camera or model camera."""
        return self._ensure_renderer().render(self.data, get_camera(name))

    def _get_obs(self) -> dict[str, np.ndarray]:
        obs = {
            "proprio": self.data.qpos[:N_ROBOT].astype(np.float32),
            "state": self.sim.get_state(),
            "object_state": self.object_state(),
        }
        if self.camera_spec is not None:
            obs["rgb"] = self._ensure_renderer().render(self.data, self.camera_spec)
        return obs

    def _info(self, solved: bool) -> dict[str, Any]:
        return {
            "is_solved": bool(solved),
            "solved_steps": self._solved_steps,
            "success": self._solved_steps > SUCCESS_MIN_STEPS,
            "task_distance": self.task_distance(),
            "kitchen_offset": self.sim.kitchen_offset.copy(),
            "num_disturbed": len(self.disturbed_joints()),
            "steps": self._steps,
        }

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and not self._seeded_once:
            seed = self.default_seed
        super().reset(seed=seed)
        self._seeded_once = True
        self.sim.reset(self.np_random)
        self._other_start = self.data.qpos[self._other_idx].copy()
        self._steps = 0
        self._solved_steps = 0
        self._needs_reset = False
        return self._get_obs(), self._info(self.is_solved())

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (N_ROBOT,):
            raise ValueError(f"action must have shape ({N_ROBOT},), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action has non-finite values: {action}")
        self.sim.step(action)
        self._steps += 1
        solved = self.is_solved()
        self._solved_steps += int(solved)
        info = self._info(solved)
        terminated = self.terminate_on_success and info["success"]
        truncated = self._steps >= self.horizon
        self._needs_reset = terminated or truncated
        return self._get_obs(), float(solved), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera(self.camera or "default")

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


@functools.lru_cache(maxsize=None)
def task_state_index(task: str) -> tuple[int, ...]:
    """:attr:`KitchenEnv.task_state_index` of ``task`` (``"microwave"`` or ``"kitchen/microwave"``)
    without keeping an environment around."""
    import envs

    env = envs.make(task if "/" in task else f"kitchen/{task}", camera=None)
    try:
        return env.unwrapped.task_state_index
    finally:
        env.close()
