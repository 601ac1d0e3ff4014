"""Arm kinematics for the scripted experts: end-effector pose, damped least squares IK and the
mapping from a desired joint configuration to FrankaKitchen's joint-velocity action.

How FrankaKitchen-v1 turns an action into motion (gymnasium_robotics ``franka_env.py``):
``a`` is clipped to [-1, 1], scaled by 2 (``act_rng``) to a joint velocity, integrated over one
control step (``dt`` = 40 x 2 ms = 0.08 s) from the *measured* joint positions, and the result is
the target of MuJoCo position servos (kp 870 / 120 / 500, joint damping 100 / 10). These servos
are overdamped (damping / kp ~ 0.11 s > dt) and sag under gravity, so a plain
``a = (q_des - q) / (2 dt)`` closes only about half the gap per step and never reaches
``q_des``. :func:`joint_action` therefore (1) adds the servo's gravity/Coriolis offset
``qfrc_bias / kp`` to the target and (2) multiplies the remaining error by a gain > 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARM_JOINTS = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("robot:panda0_finger_joint1", "robot:panda0_finger_joint2")
EE_SITE = "end_effector"
ACTION_SCALE = 2.0  # FrankaRobot.act_rng: action 1.0 == 2 rad/s (or m/s for the fingers)
FINGER_OPEN = 0.04  # finger joint range is [0, 0.04] m per finger
FINGER_CLOSED = 0.0


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation matrix for ``angle`` radians about the unit vector ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def orientation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame, radians, shortest way) that turns ``current`` into
    ``target`` (3x3 rotation matrices)."""
    import mujoco

    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(target @ current.T).reshape(-1))
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


def free_rotation_projector(free_axes) -> np.ndarray:
    """3x3 projector removing rotation about the (orthonormal) ``free_axes`` (k x 3 or None)."""
    p = np.eye(3)
    if free_axes is not None:
        for a in np.atleast_2d(np.asarray(free_axes, dtype=float)):
            a = a / np.linalg.norm(a)
            p = p - np.outer(a, a)
    return p


@dataclass
class Pose:
    """A world-frame pose: position (3,) and rotation matrix (3, 3)."""

    pos: np.ndarray
    rot: np.ndarray

    def copy(self) -> "Pose":
        return Pose(self.pos.copy(), self.rot.copy())


class ArmKinematics:
    """Kinematics of the Franka arm inside one MuJoCo model.

    Holds the ids it needs and a private scratch ``MjData`` for IK, so solving never touches
    the simulation being controlled.
    """

    def __init__(self, model):
        import mujoco

        self._mj = mujoco
        self.model = model
        self.scratch = mujoco.MjData(model)
        self.ee_site = _named_id(model, mujoco.mjtObj.mjOBJ_SITE, EE_SITE)
        joints = [_named_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        fingers = [_named_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in FINGER_JOINTS]
        self.arm_qpos = np.array([model.jnt_qposadr[j] for j in joints])
        self.arm_dof = np.array([model.jnt_dofadr[j] for j in joints])
        self.finger_qpos = np.array([model.jnt_qposadr[j] for j in fingers])
        self.finger_dof = np.array([model.jnt_dofadr[j] for j in fingers])
        self.arm_range = model.jnt_range[joints].copy()
        # position-servo gain per controlled joint (actuators are in joint order 1..7, f1, f2)
        robot_dofs = np.r_[self.arm_dof, self.finger_dof]
        self.servo_kp = np.zeros(9)
        for a in range(model.nu):
            dof = model.jnt_dofadr[model.actuator_trnid[a, 0]]
            hit = np.flatnonzero(robot_dofs == dof)
            if hit.size:
                self.servo_kp[hit[0]] = model.actuator_gainprm[a, 0]
        if np.any(self.servo_kp <= 0):
            raise ValueError("could not find a position servo for every Franka joint in the model")
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def ee_pose(self, data) -> Pose:
        """End-effector site pose in ``data`` (positions must be up to date)."""
        return Pose(data.site_xpos[self.ee_site].copy(), data.site_xmat[self.ee_site].reshape(3, 3).copy())

    def solve_ik(
        self,
        data,
        target: Pose,
        *,
        iterations: int = 12,
        damping: float = 0.03,
        rot_weight: float = 0.3,
        tol: float = 1e-4,
        max_joint_step: float = 0.3,
        rest: np.ndarray | None = None,
        rest_gain: float = 0.05,
        limit_margin: float = 0.2,
        free_axes: np.ndarray | None = None,
    ) -> np.ndarray:
        """Arm joint positions (7,) that put the end effector at ``target``.

        Damped least squares on the stacked position/orientation error, started from the
        configuration in ``data``; ``rot_weight`` trades orientation (radians) against position
        (metres). Joint limits are handled with an active set: a joint at a limit that the step
        would push further is frozen and the others re-solve the error, so the solver does not
        stall on a limit (the kitchen's start pose has joint 2 on its lower limit). The
        redundant degree of freedom is pulled gently toward ``rest`` (default: the start
        configuration, i.e. least motion) and away from limits closer than ``limit_margin``.
        ``free_axes`` (k x 3, world frame, orthonormal) are rotation axes about which the
        orientation is left free (e.g. the axis of a bar-shaped handle).
        """
        mj = self._mj
        s = self.scratch
        s.qpos[:] = data.qpos
        q = np.clip(data.qpos[self.arm_qpos], *self.arm_range.T)
        weights = np.r_[np.ones(3), np.full(3, rot_weight)]
        project = free_rotation_projector(free_axes)
        lo, hi = self.arm_range[:, 0], self.arm_range[:, 1]
        rest_q = q.copy() if rest is None else np.asarray(rest, dtype=float)
        for _ in range(iterations):
            s.qpos[self.arm_qpos] = q
            mj.mj_kinematics(self.model, s)
            mj.mj_comPos(self.model, s)
            pos = s.site_xpos[self.ee_site]
            rot = s.site_xmat[self.ee_site].reshape(3, 3)
            err = np.r_[target.pos - pos, project @ orientation_error(rot, target.rot)] * weights
            if np.linalg.norm(err) < tol:
                break
            mj.mj_jacSite(self.model, s, self._jacp, self._jacr, self.ee_site)
            jac = np.vstack([self._jacp[:, self.arm_dof], project @ self._jacr[:, self.arm_dof]])
            jac *= weights[:, None]
            secondary = rest_gain * (rest_q - q)
            secondary += np.clip(limit_margin - (q - lo), 0.0, None) - np.clip(limit_margin - (hi - q), 0.0, None)
            free = np.ones(7, dtype=bool)
            for _ in range(7):
                dq = np.zeros(7)
                jf = jac[:, free]
                pinv = jf.T @ np.linalg.inv(jf @ jf.T + damping**2 * np.eye(6))
                dq[free] = pinv @ err + (np.eye(int(free.sum())) - pinv @ jf) @ secondary[free]
                blocked = free & (((q <= lo + 1e-6) & (dq < 0)) | ((q >= hi - 1e-6) & (dq > 0)))
                if not blocked.any():
                    break
                free &= ~blocked
            peak = np.abs(dq).max()
            if peak > max_joint_step:
                dq *= max_joint_step / peak
            q = np.clip(q + dq, lo, hi)
        return q

    def joint_action(
        self,
        data,
        q_arm: np.ndarray,
        finger: float,
        *,
        dt: float,
        measured: np.ndarray | None = None,
        gain: float = 1.6,
    ) -> np.ndarray:
        """The 9-dim action in [-1, 1] that drives the arm toward ``q_arm`` and each finger
        toward the opening ``finger`` (metres, 0 closed .. 0.04 open).

        ``measured`` is the joint reading the environment integrates the action from (its
        observation, which carries a little sensor noise); defaults to the true positions.
        """
        q = np.r_[data.qpos[self.arm_qpos], data.qpos[self.finger_qpos]]
        base = q if measured is None else np.asarray(measured, dtype=float)[:9]
        q_des = np.r_[q_arm, finger, finger]
        # steady-state servo offset: the servo settles where kp * (target - q) = qfrc_bias
        bias = np.r_[data.qfrc_bias[self.arm_dof], data.qfrc_bias[self.finger_dof]] / self.servo_kp
        servo_target = q + gain * (q_des - q) + bias
        servo_target[7:] = q_des[7:]  # fingers: position target directly (contact stops them)
        action = np.clip((servo_target - base) / (ACTION_SCALE * dt), -1.0, 1.0)
        # Fully open / closed fingers get the saturated command: the env clips the finger target
        # to [0, 0.04], so the motion is the same, but the recorded action no longer depends on how
        # far the fingers happen to be from the limit. A cloned policy then keeps open fingers open
        # (a proportional label is ~0 there, and any small negative error it makes integrates into
        # the fingers drifting shut) and squeezes a held handle at a constant command.
        for k, target in zip((7, 8), q_des[7:]):
            if target >= FINGER_OPEN:
                action[k] = 1.0
            elif target <= FINGER_CLOSED:
                action[k] = -1.0
        return action


def _named_id(model, obj, name: str) -> int:
    import mujoco

    i = mujoco.mj_name2id(model, obj, name)
    if i < 0:
        kind = str(obj).split(".")[-1].replace("mjOBJ_", "").lower()
        raise KeyError(f"the kitchen model has no {kind} named {name!r}")
    return int(i)
