"""Expert for ``hinge_cabinet``: swing the right door of the hinged cabinet open with a fork push.

The handle bar of the closed door is 0.9-1.0 m from the shoulder, at the edge of the arm's
reach, and from the kitchen's start posture the arm needs 17-33 of the 50 control steps just to
get there (joint 1 turns 1.2-2.3 rad at ~0.87 rad/s). Grasping the bar then costs a close phase
and the grasp slips (the pull runs along the fingers). This expert never closes the fingers:

1. ``align``: the open hand (fingers level, heading free) goes under the bar's lower end and
   rises onto it as soon as it is lined up with it (a funnel on the measured hand-to-bar
   offset), so the bar comes between the open fingers (8 cm apart around a 4.4 cm bar) from
   below, the direction the arm is already moving in.
2. ``push``: once the bar is between the fingers, the hand is driven to the bar's point a little
   ahead along the door's arc, displaced along its closing axis so that the trailing finger
   presses the bar sideways. The handle stands 12.8 cm in front of the hinge axis, so a sideways
   push on it opens the door from the closed position on, and the lever grows as the door opens
   (the bar's path turns from "toward the robot" to "sideways"). Along the fingers the hand
   follows the bar (at most 2 cm ahead), so the bar stays in the fork.

The hand's heading is left to the IK except at two bounds measured from the door's current
angle: not turned left of the door's normal (the push would lose its lever) and, late in the
swing, not pointing along the door face (the hand's 20 cm wide body would hit the door).

All decisions are functions of the current state (hand-to-bar offset, door angle); the only
memory is the active phase. IK: :func:`.rate_ik.solve_ik_rate_limited`, which keeps each joint's
step within what the servos can do in one control step.
"""
from __future__ import annotations

import numpy as np

from . import register_expert
from .base import FORWARD, JointTaskExpert, Waypoint
from .kinematics import FINGER_OPEN, Pose, rotation_about
from .rate_ik import solve_ik_rate_limited
from .scene import Scene
from .tasks import VERTICAL_BAR


def _unit_xy(v: np.ndarray) -> np.ndarray:
    """Horizontal part of ``v``, normalised."""
    v = np.array([v[0], v[1], 0.0])
    return v / max(np.linalg.norm(v), 1e-9)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


@register_expert("hinge_cabinet")
class HingeCabinetExpert(JointTaskExpert):
    """Fork push on the hinged door's vertical handle bar (the door is the env task's joint:
    ``envs`` uses the RIGHT door, ``right_hinge_cabinet``, see envs/kitchen_tasks.py).

    Lengths in metres, angles in radians; "heading" is the direction of the hand's pointing
    axis in the horizontal plane, measured relative to the door's +x axis (which points from the
    free edge toward the hinge), so pi/2 points straight into the closed door.
    """

    joint, site, default_goal = "right_hinge_cabinet", "hinge_site2", 1.45
    overshoot = 0.2          # aim past the goal: the door stops where it is left
    lead = 0.15              # door-angle lead of the pushed point along the arc
    max_depth_lead = 0.02    # ... but at most this far ahead along the fingers
    finger_gap = 0.018       # open finger's inner face (0.04 from the EE) minus the bar radius
    press = 0.035            # how far the trailing finger is driven into the bar
    depth = 0.02             # bar this far ahead of the EE site along the fingers (toward the tips)
    contact_height = 0.12    # EE above the bar's lower end while pushing: between its mounts
    below = 0.03             # EE below the bar's lower end while not lined up with it
    align_in, align_out = 0.01, 0.04    # hand-to-bar offset: rise fully / not at all
    engage_across, engage_along = 0.018, 0.03  # bar counted between the fingers
    min_heading, max_heading = 0.2, np.pi / 2  # relative to the door's +x axis (see above)
    # max joint step per control step asked of the IK (rad): with the servo gain 2.5 that is a
    # saturated action; while pushing, the wrist (joints 5-7, 1.2 rad/s = 0.096 rad per step
    # against 0.87 rad/s for joints 1-4) may move further (200 seeds: 96% against 95.5%)
    step_bound = 0.064
    push_step_bound = (0.064,) * 4 + (0.09,) * 3
    ik_lead = 0.3            # max distance of the commanded pose from the hand (m)
    ik_damping = 0.1

    def __init__(self, goal=None):
        super().__init__(goal)
        self._bar_half = None
        self._axes_locked = {"align": False, "push": False}

    # -- geometry -------------------------------------------------------------------------
    def _bar(self, scene: Scene) -> tuple[np.ndarray, float]:
        """Centre of the handle bar and height of its lower end."""
        c = scene.site(self.site).pos
        return c, float(c[2] - self._bar_half)

    def _bar_half_length(self, scene: Scene) -> float:
        """Half-length of the cylinder on the door's body nearest to the handle site."""
        mj = scene._mj
        model, data = scene.model, scene.data
        body = model.jnt_bodyid[scene._id(mj.mjtObj.mjOBJ_JOINT, self.joint)]
        site = scene.site(self.site).pos
        best, half = np.inf, None
        for g in range(model.ngeom):
            if model.geom_bodyid[g] == body and model.geom_type[g] == mj.mjtGeom.mjGEOM_CYLINDER:
                d = float(np.linalg.norm(data.geom_xpos[g] - site))
                if d < best:
                    best, half = d, float(model.geom_size[g][1])
        if half is None or best > 0.05:
            raise ValueError(f"no cylindrical handle bar at site {self.site!r} on the body of joint {self.joint!r}")
        return half

    def _bar_in_hand(self, scene: Scene) -> tuple[float, float, float]:
        """The bar's axis seen from the hand: (offset across the fingers, offset along them from
        the slot ``depth`` ahead of the EE, height of the EE above the bar's lower end)."""
        c, end = self._bar(scene)
        ee = scene.ee()
        point, close = _unit_xy(ee.rot[:, 2]), _unit_xy(ee.rot[:, 1])
        d = c - (ee.pos + point * self.depth)
        return float(d @ close), float(d @ point), float(ee.pos[2] - end)

    def _bounded_heading(self, scene: Scene, lo: float, hi: float) -> tuple[np.ndarray, bool]:
        """Level hand orientation with the current heading clipped to [lo, hi] (relative to the
        door's +x axis), and whether it was clipped."""
        point = _unit_xy(scene.ee().rot[:, 2])
        door = scene.joint(self.joint).value
        rel = _wrap(np.arctan2(point[1], point[0]) - door)
        clipped = float(np.clip(rel, lo, hi))
        rot = rotation_about([0.0, 0.0, 1.0], door + clipped - np.pi / 2) @ FORWARD  # FORWARD points along +y
        return rot, clipped != rel

    def align_pose(self, scene: Scene) -> Pose:
        """Under the bar's lower end, rising onto it as the hand lines up with it."""
        c, end = self._bar(scene)
        slot = c - _unit_xy(scene.ee().rot[:, 2]) * self.depth
        across, along, _ = self._bar_in_hand(scene)
        rise = float(np.clip((self.align_out - np.hypot(across, along)) / (self.align_out - self.align_in), 0.0, 1.0))
        z = end - self.below + rise * (self.below + self.contact_height)
        rot, self._axes_locked["align"] = self._bounded_heading(scene, -np.inf, self.max_heading)
        return Pose(np.array([slot[0], slot[1], z]), rot)

    def engaged(self, scene: Scene) -> bool:
        """The bar is between the open fingers and the hand is above its lower end."""
        across, along, height = self._bar_in_hand(scene)
        return bool(abs(across) < self.engage_across and abs(along) < self.engage_along and height > 0.005)

    def push_pose(self, scene: Scene) -> Pose:
        """The bar point ``lead`` ahead along the door's arc (at most ``max_depth_lead`` ahead
        along the fingers), with the hand displaced along its closing axis, toward the side the
        door opens to, so that the trailing finger presses the bar by ``press``."""
        jf = scene.joint(self.joint)
        c, end = self._bar(scene)
        bar = np.array([c[0], c[1], end + self.contact_height])
        delta = self.joint_delta(scene)
        step = jf.carry(Pose(bar, np.eye(3)), delta).pos - bar
        ee = scene.ee()
        point, close = _unit_xy(ee.rot[:, 2]), _unit_xy(ee.rot[:, 1])
        along = float(step @ point)
        step -= point * (along - float(np.clip(along, -self.max_depth_lead, self.max_depth_lead)))
        if close @ np.cross(jf.axis, bar - jf.anchor) * np.sign(delta or 1.0) < 0:
            close = -close
        pos = bar + step + close * (self.finger_gap + self.press) - point * self.depth
        rot, self._axes_locked["push"] = self._bounded_heading(scene, self.min_heading, self.max_heading)
        return Pose(pos, rot)

    def _axes(self, phase: str):
        """Free rotation axes: heading and tilt about the closing axis (a level fork around a
        vertical bar), or only the tilt while the heading is held at one of its bounds."""
        def axes(target: Pose) -> np.ndarray:
            return target.rot[:, 1][None] if self._axes_locked[phase] else VERTICAL_BAR(target)
        return axes

    # -- plan and control -----------------------------------------------------------------
    def waypoints(self, scene: Scene) -> list[Waypoint]:
        self.start_joint_task(scene)
        self._bar_half = self._bar_half_length(scene)
        self._axes_locked = {"align": False, "push": False}
        return [
            Waypoint("align", self.align_pose, FINGER_OPEN, until=self.engaged, max_steps=45,
                     free_axes=self._axes("align")),
            Waypoint("push", self.push_pose, FINGER_OPEN, until=lambda s: False, max_steps=10**6,
                     free_axes=self._axes("push")),
        ]

    def arm_target(self, scene: Scene, wp: Waypoint) -> np.ndarray:
        """The base class' step with the rate-limited IK."""
        target = wp.target(scene)
        command = self._lead(scene.ee(), target, self.ik_lead, 1.0)
        bound = self.push_step_bound if wp.name == "push" else self.step_bound
        return solve_ik_rate_limited(scene.kin, scene.data, command, bound,
                                     free_axes=wp.axes(target), damping=self.ik_damping)
