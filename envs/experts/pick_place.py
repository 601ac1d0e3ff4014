"""Pick-and-place expert: grasp a free body by a handle site, lift it, carry it above its goal
position, lower it there and hold it."""
from __future__ import annotations

import numpy as np

from .articulated import fingers_settled
from .base import FORWARD, Waypoint, WaypointExpert
from .kinematics import FINGER_CLOSED, FINGER_OPEN, Pose, rotation_about
from .scene import Scene


class PickPlaceExpert(WaypointExpert):
    """Move free ``body`` (grasped at ``site``) so that its position reaches the goal.

    - ``grasp_rot``: hand orientation at the grasp (the handle's axis stays free, see
      ``free_axes``), ``grasp_offset``: grasp point minus site (world frame).
    - ``approach``: pre-grasp point minus grasp point.
    - ``lift``: height of the carry above start and goal.
    - ``default_goal``: goal body position (x, y, z) when the env does not give one; only the
      first three entries of a goal are used (a free joint's position).
    """

    body: str = ""
    site: str = ""
    default_goal: tuple = (0.0, 0.0, 0.0)
    grasp_rot: np.ndarray = FORWARD
    grasp_offset: tuple = (0.0, 0.0, 0.0)
    approach: tuple = (0.0, -0.08, 0.0)
    lift: float = 0.05
    free_axes: tuple | None = None

    def __init__(self, goal=None):
        super().__init__(goal)
        self._grip_rel: Pose | None = None

    def goal_position(self) -> np.ndarray:
        g = self.goal if self.goal is not None else np.asarray(self.default_goal, dtype=float)
        return np.asarray(g[:3], dtype=float)

    def grasp_pose(self, scene: Scene) -> Pose:
        return Pose(scene.site(self.site).pos + np.asarray(self.grasp_offset), self.grasp_rot.copy())

    def pre_grasp_pose(self, scene: Scene) -> Pose:
        g = self.grasp_pose(scene)
        return Pose(g.pos + np.asarray(self.approach), g.rot)

    def _remember_grip(self, scene: Scene) -> None:
        body, ee = scene.body(self.body), scene.ee()
        self._grip_rel = Pose(body.rot.T @ (ee.pos - body.pos), body.rot.T @ ee.rot)
        self._body_start = body.pos.copy()

    def _hand_for_body_at(self, scene: Scene, body_pos: np.ndarray) -> Pose:
        """Hand pose that puts the held body at ``body_pos`` with its current orientation."""
        body = scene.body(self.body)
        return Pose(body_pos + body.rot @ self._grip_rel.pos, body.rot @ self._grip_rel.rot)

    def _lifted(self, scene: Scene) -> Pose:
        return self._hand_for_body_at(scene, self._body_start + np.array([0.0, 0.0, self.lift]))

    def _above_goal(self, scene: Scene) -> Pose:
        return self._hand_for_body_at(scene, self.goal_position() + np.array([0.0, 0.0, self.lift]))

    def _at_goal(self, scene: Scene) -> Pose:
        return self._hand_for_body_at(scene, self.goal_position() + np.array([0.0, 0.0, 0.005]))

    def waypoints(self, scene: Scene) -> list[Waypoint]:
        self._grip_rel = None
        plan = [
            Waypoint("pre_grasp", self.pre_grasp_pose, FINGER_OPEN, pos_tol=0.03, rot_tol=0.25, max_steps=25),
            Waypoint("grasp", self.grasp_pose, FINGER_OPEN, pos_tol=0.012, rot_tol=0.15, max_steps=10, speed=0.05),
            Waypoint("close", self.grasp_pose, FINGER_CLOSED, min_steps=2, max_steps=8, until=fingers_settled,
                     on_exit=self._remember_grip),
            Waypoint("lift", self._lifted, FINGER_CLOSED, pos_tol=0.02, rot_tol=0.3, max_steps=8),
            Waypoint("carry", self._above_goal, FINGER_CLOSED, pos_tol=0.03, rot_tol=0.3, max_steps=25),
            Waypoint("place", self._at_goal, FINGER_CLOSED, until=lambda s: False, max_steps=10**6, speed=0.03),
        ]
        if self.free_axes is not None:
            for wp in plan[:3]:  # the handle's axis is free while reaching; carrying keeps the grip
                wp.free_axes = np.asarray(self.free_axes, dtype=float)
        return plan


def rolled(rot: np.ndarray, angle: float) -> np.ndarray:
    """``rot`` turned by ``angle`` about its own pointing (z) axis."""
    return rotation_about(rot[:, 2], angle) @ rot
