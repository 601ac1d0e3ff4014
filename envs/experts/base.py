"""Waypoint-following base shared by every scripted expert.

An expert is a list of :class:`Waypoint` s. Each waypoint names an end-effector pose as a
function of the *current* simulator state (so it follows randomised and moving objects), a
finger opening and a completion test. Every control step the expert moves a bounded distance
from the current end-effector pose toward the active waypoint, solves damped least squares IK
for that intermediate pose and turns the joint error into FrankaKitchen's joint-velocity
action (:meth:`ArmKinematics.joint_action`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .kinematics import FINGER_OPEN, Pose, free_rotation_projector, orientation_error, rotation_about
from .scene import Scene, find_sim

# End-effector orientation with the gripper pointing along +y (into the kitchen), fingers
# closing along world x and the hand's x axis up: the orientation of the kitchen's start pose.
FORWARD = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def bar_grip_axes(bar_axis) -> Callable[[Pose], np.ndarray]:
    """Free rotation axes for a grasp around a straight bar along ``bar_axis`` (world): turning
    about the bar, and tilting about the fingers' closing axis, both keep the bar between the
    finger pads; only the closing axis' angle to the bar is held."""
    bar = np.asarray(bar_axis, dtype=float) / np.linalg.norm(bar_axis)

    def axes(target: Pose) -> np.ndarray:
        closing = target.rot[:, 1] - bar * (target.rot[:, 1] @ bar)
        n = np.linalg.norm(closing)
        return bar[None] if n < 1e-6 else np.stack([bar, closing / n])

    return axes


def yaw_of(rot: np.ndarray) -> float:
    """Heading (rotation about world z) of a frame's x axis."""
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def yawed(rot: np.ndarray, yaw: float) -> np.ndarray:
    """``rot`` turned by ``yaw`` radians about world z."""
    return rotation_about(np.array([0.0, 0.0, 1.0]), yaw) @ rot


def task_goal(env) -> np.ndarray | None:
    """The goal of the env's task in the current (randomised) kitchen, when the env states it
    (``envs.make`` environments have ``goal()``); ``None`` otherwise."""
    goal = getattr(getattr(env, "unwrapped", env), "goal", None)
    if callable(goal):
        return np.atleast_1d(np.asarray(goal(), dtype=float))
    return None


@dataclass
class Waypoint:
    """One leg of an expert's motion.

    ``target(scene)`` is re-evaluated every step. The waypoint is done when the end effector
    is within ``pos_tol`` metres / ``rot_tol`` radians of the target (or ``until(scene)`` is
    true, when given) and at least ``min_steps`` steps were spent in it, or after
    ``max_steps``. ``speed`` / ``rot_speed`` bound how far the commanded pose may lead the
    current one per control step.
    """

    name: str
    target: Callable[[Scene], Pose]
    gripper: float = FINGER_OPEN
    until: Callable[[Scene], bool] | None = None
    pos_tol: float = 0.015
    rot_tol: float = 0.15
    min_steps: int = 0
    max_steps: int = 50
    speed: float = 0.07
    rot_speed: float = 0.25
    on_exit: Callable[[Scene], None] | None = None
    # world rotation axes left free (see solve_ik): an array, or a function of the target pose
    free_axes: np.ndarray | Callable[[Pose], np.ndarray] | None = None

    def axes(self, target: Pose) -> np.ndarray | None:
        return self.free_axes(target) if callable(self.free_axes) else self.free_axes

    def done(self, scene: Scene, steps: int) -> bool:
        if steps >= self.max_steps:
            return True
        if steps < self.min_steps:
            return False
        if self.until is not None:
            return bool(self.until(scene))
        goal, ee = self.target(scene), scene.ee()
        return (
            np.linalg.norm(goal.pos - ee.pos) < self.pos_tol
            and np.linalg.norm(free_rotation_projector(self.axes(goal)) @ orientation_error(ee.rot, goal.rot))
            < self.rot_tol
        )


@dataclass
class ExpertState:
    index: int = 0
    steps_in_waypoint: int = 0
    steps: int = 0
    log: list = field(default_factory=list)


class WaypointExpert:
    """Base class: subclasses implement :meth:`waypoints` (and may keep per-episode memory).

    Usage::

        expert = make_expert("microwave")
        obs, info = env.reset(seed=0)
        expert.reset(env)
        for _ in range(50):
            obs, reward, terminated, truncated, info = env.step(expert.act(env))
    """

    task: str = ""
    ik_iterations: int = 12  # DLS iterations per control step (converges in 6-12)
    # multiplies the joint error sent to the env's overdamped position servos, which close
    # about half of a small error per step; 2.5 was the fastest setting without overshoot
    servo_gain: float = 2.5

    def __init__(self, goal: np.ndarray | float | None = None):
        self._given_goal = None if goal is None else np.atleast_1d(np.asarray(goal, dtype=float))
        self.goal = self._given_goal
        self.scene: Scene | None = None
        self.plan: list[Waypoint] = []
        self.state = ExpertState()
        self._sim_key = None
        self.env_task = None  # the env's task record (envs.KitchenTask) when it has one

    # -- subclass API -------------------------------------------------------------------
    def waypoints(self, scene: Scene) -> list[Waypoint]:
        raise NotImplementedError

    # -- control loop -------------------------------------------------------------------
    def reset(self, env) -> None:
        """Start a new episode on ``env`` (call after ``env.reset``)."""
        model, data, dt = find_sim(env)
        if self.scene is None or self._sim_key != (id(model), id(data)):
            self.scene = Scene(model, data, dt)
            self._sim_key = (id(model), id(data))
        self.state = ExpertState()
        self.goal = self._given_goal if self._given_goal is not None else task_goal(env)
        self.env_task = getattr(getattr(env, "unwrapped", env), "task", None)
        self.plan = self.waypoints(self.scene)
        if not self.plan:
            raise ValueError(f"expert {type(self).__name__} planned no waypoints")

    @property
    def phase(self) -> str:
        """Name of the active waypoint."""
        return self.plan[min(self.state.index, len(self.plan) - 1)].name if self.plan else ""

    def act(self, env=None) -> np.ndarray:
        """The next 9-dim action. ``env`` is optional after :meth:`reset` (its sim is kept)."""
        if self.scene is None:
            if env is None:
                raise RuntimeError("call expert.reset(env) before expert.act()")
            self.reset(env)
        scene, st = self.scene, self.state
        while st.index < len(self.plan) - 1 and self.plan[st.index].done(scene, st.steps_in_waypoint):
            wp = self.plan[st.index]
            if wp.on_exit is not None:
                wp.on_exit(scene)
            st.log.append((wp.name, st.steps_in_waypoint))
            st.index += 1
            st.steps_in_waypoint = 0
        wp = self.plan[st.index]
        q_arm = self.arm_target(scene, wp)
        action = scene.kin.joint_action(scene.data, q_arm, wp.gripper, dt=scene.dt, gain=self.servo_gain)
        st.steps_in_waypoint += 1
        st.steps += 1
        return action

    __call__ = act

    def arm_target(self, scene: Scene, wp: Waypoint) -> np.ndarray:
        """This step's arm joint target: a pose leading the hand toward the waypoint's target,
        solved with damped least squares IK (experts may override the IK)."""
        target = wp.target(scene)
        command = self._lead(scene.ee(), target, wp.speed, wp.rot_speed)
        return scene.kin.solve_ik(scene.data, command, iterations=self.ik_iterations, free_axes=wp.axes(target))

    @staticmethod
    def _lead(current: Pose, goal: Pose, speed: float, rot_speed: float) -> Pose:
        """A pose at most ``speed`` metres / ``rot_speed`` radians from ``current`` toward ``goal``."""
        delta = goal.pos - current.pos
        dist = np.linalg.norm(delta)
        pos = goal.pos if dist <= speed else current.pos + delta * (speed / dist)
        rvec = orientation_error(current.rot, goal.rot)
        angle = np.linalg.norm(rvec)
        rot = goal.rot if angle <= rot_speed else rotation_about(rvec / angle, rot_speed) @ current.rot
        return Pose(pos, rot)


class JointTaskExpert(WaypointExpert):
    """A waypoint expert that drives one object ``joint`` (handle ``site``) to the task's goal.

    ``joint`` / ``site`` follow the env's task record when it names this task (e.g. which
    cabinet door); ``default_goal`` is used only when the env states no goal. ``overshoot``:
    how far past the goal the expert aims, in joint units, so that the joint settles inside the
    success threshold; ``lead``: how far ahead of the joint's current value a carried contact
    is placed each step.
    """

    joint: str = ""
    site: str = ""
    default_goal: float = 0.0
    overshoot: float = 0.05
    lead: float = 0.15

    @property
    def target_value(self) -> float:
        return float(self.goal[0]) if self.goal is not None else float(self.default_goal)

    def start_joint_task(self, scene: Scene) -> None:
        """Adopt the env's joint/site for this task and remember the joint's start value."""
        task = self.env_task
        if task is not None and getattr(task, "name", None) == self.task and getattr(task, "joints", None):
            self.joint, self.site = task.joints[0], task.site
        self._start_value = scene.joint(self.joint).value

    def joint_delta(self, scene: Scene) -> float:
        """How far to move the joint this step: toward the goal plus ``overshoot`` (in the
        direction of travel from the start value), at most ``lead``."""
        aim = self.target_value + self.overshoot * np.sign(self.target_value - self._start_value)
        return float(np.clip(aim - scene.joint(self.joint).value, -self.lead, self.lead))

