"""Push a free object across a surface to a goal position with the closed fingertips.

Grasp-and-carry was tried first for the kettle: MuJoCo's soft contacts let a 0.9 kg kettle
creep out of the Franka fingers under the accelerations a 50-step episode needs, so the expert
pushes instead. The hand approaches the object's back face (the side facing away from the
goal), then drives the contact point toward the goal; the push direction is re-aimed every
step from the object's current position, which corrects small yaw and drift.
"""
from __future__ import annotations

import numpy as np

from .base import FORWARD, Waypoint, WaypointExpert, yaw_of, yawed
from .kinematics import FINGER_CLOSED, Pose
from .scene import Scene


class PushObjectExpert(WaypointExpert):
    """Push free ``body`` so that its position reaches the goal (first 3 goal entries).

    - ``half_depth``: distance from the body origin to its face that is pushed, along the
      push direction (m); ``push_height``: contact height above the body origin.
    - ``standoff``: distance from the end-effector site to the fingertips along the hand's
      pointing axis; ``hand_rot``: hand orientation for a push along +y (turned to the push
      direction).
    - ``approach``: clearance behind the face before moving in.
    """

    body: str = ""
    default_goal: tuple = (0.0, 0.0, 0.0)
    half_depth: float = 0.12
    push_height: float = 0.06
    standoff: float = 0.04
    approach: float = 0.06
    overshoot: float = 0.01
    push_speed: float = 0.05
    push_lead: float = 0.06   # how far ahead of the current contact the hand is aimed (m)
    steer_gain: float = 0.15  # sideways contact shift per radian of heading error (m/rad)
    max_steer: float = 0.05
    hand_rot: np.ndarray = FORWARD
    free_axes = None  # world rotation axes of the hand left free (see ArmKinematics.solve_ik)

    def goal_position(self) -> np.ndarray:
        g = self.goal if self.goal is not None else np.asarray(self.default_goal, dtype=float)
        return np.asarray(g[:3], dtype=float)

    def goal_yaw(self) -> float:
        """Heading of the goal orientation (quaternion w, x, y, z in goal[3:7]), else 0."""
        if self.goal is not None and len(self.goal) >= 7:
            w, z = self.goal[3], self.goal[6]
            return float(2.0 * np.arctan2(z, w))
        return 0.0

    def _contact(self, scene: Scene, body_pos: np.ndarray, back: float, d: np.ndarray | None = None,
                 steer: float = 0.0) -> Pose:
        d = self._dir0 if d is None else d
        side = np.array([-d[1], d[0], 0.0])  # left of the push direction
        face = body_pos - d * (self.half_depth + back) + side * steer
        face[2] = body_pos[2] + self.push_height
        rot = yawed(self.hand_rot, float(np.arctan2(d[1], d[0]) - np.pi / 2))  # hand_rot pushes along +y
        return Pose(face - rot[:, 2] * self.standoff, rot)

    def _steer(self, scene: Scene) -> float:
        """Sideways shift of the contact that turns the body back toward the goal heading: a
        push left of the centre turns it counter-clockwise."""
        yaw_err = yaw_of(scene.body(self.body).rot) - self.goal_yaw()
        yaw_err = (yaw_err + np.pi) % (2 * np.pi) - np.pi
        return float(np.clip(-self.steer_gain * yaw_err, -self.max_steer, self.max_steer))

    def _behind(self, scene: Scene) -> Pose:
        return self._contact(scene, scene.body(self.body).pos, self.approach)

    def _touch(self, scene: Scene) -> Pose:
        return self._contact(scene, scene.body(self.body).pos, 0.0)

    def _pushed(self, scene: Scene) -> Pose:
        """Hand pose ``push_lead`` ahead of the contact behind the body, along the initial push
        direction, until the body's remaining distance along it is covered (then it holds)."""
        d = self._dir0
        body = scene.body(self.body).pos
        remaining = float((self.goal_position() - body) @ d)
        here = self._contact(scene, body, 0.0, d, self._steer(scene))
        step = float(np.clip(remaining + self.overshoot, -0.02, self.push_lead))
        return Pose(here.pos + d * step, here.rot)

    def waypoints(self, scene: Scene) -> list[Waypoint]:
        self._body0 = scene.body(self.body).pos.copy()
        d = self.goal_position() - self._body0
        d[2] = 0.0
        self._dir0 = d / max(np.linalg.norm(d), 1e-9)
        axes = None if self.free_axes is None else np.asarray(self.free_axes, dtype=float)
        return [
            Waypoint("behind", self._behind, FINGER_CLOSED, pos_tol=0.025, rot_tol=0.3, max_steps=25, speed=0.12,
                     free_axes=axes),
            Waypoint("touch", self._touch, FINGER_CLOSED, pos_tol=0.015, rot_tol=0.3, max_steps=6, speed=0.05,
                     free_axes=axes),
            Waypoint("push", self._pushed, FINGER_CLOSED, until=lambda s: False, max_steps=10**6,
                     speed=self.push_speed, free_axes=axes),
        ]
