"""Experts for articulated parts: reach a contact pose on the part, optionally close the
fingers on its handle, then carry that contact along the joint's own motion (an arc about a
hinge axis or a line along a slide axis) until the joint reaches its goal, and hold it there.
"""
from __future__ import annotations

import numpy as np

from .base import FORWARD, JointTaskExpert, Waypoint, yaw_of, yawed
from .kinematics import (FINGER_CLOSED, FINGER_OPEN, Pose, free_rotation_projector, orientation_error,
                         rotation_about)
from .scene import Scene


def fingers_settled(scene: Scene) -> bool:
    """The fingers stopped moving (closed on something, or fully closed)."""
    return bool(np.abs(scene.data.qvel[scene.kin.finger_dof]).max() < 0.02)


class ArticulationExpert(JointTaskExpert):
    """Drive one hinge/slide ``joint`` to ``goal`` through a contact near ``site``.

    Class attributes describe a task:

    - ``joint`` / ``site``: the joint to move and the handle site on the moving part.
    - ``default_goal``: goal joint value when the env gives none (``env.goal()`` wins).
    - ``grasp``: close the fingers on the handle (pull) or push with closed fingers.
    - ``contact_offset``: contact point minus site position, in the part's heading frame
      (x along the part, y away from the robot, z up).
    - ``approach``: pre-contact point minus contact point, same frame.
    - ``roll``: rotation of the hand about its pointing axis (radians) at contact.
    - ``tilt``: (yaw, pitch) of the pointing direction at contact, radians: yaw turns it toward
      -x/+x (positive = toward -x), pitch up (+) or down (-).
    - ``overshoot``: how far past the goal the expert aims, in joint units (toward the
      opening direction), so that the joint settles inside the success threshold.
    - ``lead``: how far ahead of the joint's current value the carried contact is placed each
      step (joint units).
    """

    grasp: bool = True
    contact_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    approach: tuple[float, float, float] = (0.0, -0.10, 0.0)
    roll: float = 0.0
    tilt: tuple[float, float] = (0.0, 0.0)
    hold_gripper: float = FINGER_CLOSED
    reach_speed: float = 0.12  # lead (m per step) of the free-space reach
    pre_contact_tol: float = 0.03  # how close to the pre-contact pose before moving in (m)
    contact_speed: float = 0.05  # lead (m per step) while moving in to the contact
    carry_speed: float = 0.07  # lead (m per step) while moving the part
    free_axes = None  # world rotation axes left free while reaching the contact (array or callable)
    # alternatives to ``free_axes``, tried first in order at the start of an episode: the first
    # whose contact pose the arm can reach (IK from the current configuration, see
    # ``reachable``) is used for the reach; ``free_axes`` when none can
    prefer_free_axes: tuple = ()
    carry_free_axes = None  # ... and while carrying it along the joint

    def __init__(self, goal=None):
        super().__init__(goal)
        self._grip_rel: Pose | None = None  # contact pose in the moving body's frame
        self._heading: float = 0.0

    # -- geometry ------------------------------------------------------------------------
    def _part_frame(self, scene: Scene) -> np.ndarray:
        return yawed(np.eye(3), self._heading)

    def contact_pose(self, scene: Scene) -> Pose:
        frame = self._part_frame(scene)
        pos = scene.site(self.site).pos + frame @ np.asarray(self.contact_offset)
        rot = FORWARD
        if self.roll:
            rot = rotation_about(rot[:, 2], self.roll) @ rot
        yaw, pitch = self.tilt
        rot = rotation_about([0.0, 0.0, 1.0], yaw) @ rotation_about([1.0, 0.0, 0.0], pitch) @ rot
        return Pose(pos, yawed(rot, self._heading))

    def pre_contact_pose(self, scene: Scene) -> Pose:
        contact = self.contact_pose(scene)
        return Pose(contact.pos + self._part_frame(scene) @ np.asarray(self.approach), contact.rot)

    def _moving_body(self, scene: Scene) -> Pose:
        model = scene.model
        j = scene._id(scene._mj.mjtObj.mjOBJ_JOINT, self.joint)
        b = int(model.jnt_bodyid[j])
        return Pose(scene.data.xpos[b].copy(), scene.data.xmat[b].reshape(3, 3).copy())

    def _remember_grip(self, scene: Scene) -> None:
        body = self._moving_body(scene)
        ee = scene.ee() if self.grasp else self.contact_pose(scene)
        self._grip_rel = Pose(body.rot.T @ (ee.pos - body.pos), body.rot.T @ ee.rot)

    def carried_pose(self, scene: Scene) -> Pose:
        """The remembered contact, moved along the joint toward the goal by at most ``lead``."""
        body = self._moving_body(scene)
        rel = self._grip_rel
        attached = Pose(body.pos + body.rot @ rel.pos, body.rot @ rel.rot)
        return scene.joint(self.joint).carry(attached, self.joint_delta(scene))

    def reachable(self, scene: Scene, target: Pose, axes, pos_tol: float = 0.005, rot_tol: float = 0.05) -> bool:
        """Whether IK (from the current arm configuration, in a scratch copy of the state) puts
        the end effector at ``target`` with the rotation axes ``axes`` left free."""
        mj = scene._mj
        axes = axes(target) if callable(axes) else (None if axes is None else np.asarray(axes, dtype=float))
        q = scene.kin.solve_ik(scene.data, target, iterations=150, free_axes=axes)
        scratch = mj.MjData(scene.model)
        scratch.qpos[:] = scene.data.qpos
        scratch.qpos[scene.kin.arm_qpos] = q
        mj.mj_kinematics(scene.model, scratch)
        ee = scene.kin.ee_pose(scratch)
        rot_err = free_rotation_projector(axes) @ orientation_error(ee.rot, target.rot)
        return bool(np.linalg.norm(ee.pos - target.pos) < pos_tol and np.linalg.norm(rot_err) < rot_tol)

    def _reach_axes(self, scene: Scene):
        contact = self.contact_pose(scene)
        for axes in self.prefer_free_axes:
            if self.reachable(scene, contact, axes):
                return axes
        return self.free_axes

    # -- plan ----------------------------------------------------------------------------
    def waypoints(self, scene: Scene) -> list[Waypoint]:
        self.start_joint_task(scene)
        self._heading = yaw_of(scene.site(self.site).rot)
        self._grip_rel = None
        reach_grip = FINGER_OPEN if self.grasp else FINGER_CLOSED
        plan = [
            Waypoint("pre_contact", self.pre_contact_pose, reach_grip, pos_tol=self.pre_contact_tol, rot_tol=0.2,
                     max_steps=25,
                     speed=self.reach_speed),
            Waypoint("contact", self.contact_pose, reach_grip, pos_tol=0.012 if self.grasp else 0.02,
                     rot_tol=0.1 if self.grasp else 0.2, max_steps=10 if self.grasp else 6,
                     speed=self.contact_speed),
        ]
        if self.grasp:
            plan.append(
                Waypoint("close", self.contact_pose, FINGER_CLOSED, min_steps=2, max_steps=8,
                         until=fingers_settled)
            )
        plan[-1].on_exit = self._remember_grip
        plan.append(Waypoint("carry", self.carried_pose, self.hold_gripper, until=lambda s: False, max_steps=10**6,
                             speed=self.carry_speed))
        reach_axes = self._reach_axes(scene)
        for wp in plan:
            axes = self.carry_free_axes if wp.name == "carry" else reach_axes
            wp.free_axes = axes if (axes is None or callable(axes)) else np.asarray(axes, dtype=float)
        return plan
