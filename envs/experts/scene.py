"""Read-only view of the kitchen simulator state that the experts plan from.

An expert may look at what a scripted controller on a real robot could know from a perfect
state estimator: poses of sites and bodies, joint values, joint axes. It never writes to the
simulation; its only output is the action.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinematics import ArmKinematics, Pose, rotation_about


@dataclass(frozen=True)
class JointFrame:
    """A 1-dof joint in world coordinates: kind ``"hinge"`` or ``"slide"``, axis, anchor, value."""

    kind: str
    axis: np.ndarray
    anchor: np.ndarray
    value: float

    def carry(self, pose: Pose, delta: float) -> Pose:
        """``pose`` rigidly attached to the joint's child body, after the joint moves by ``delta``."""
        if self.kind == "slide":
            return Pose(pose.pos + delta * self.axis, pose.rot.copy())
        rot = rotation_about(self.axis, delta)
        return Pose(self.anchor + rot @ (pose.pos - self.anchor), rot @ pose.rot)


def find_sim(env):
    """``(model, data, dt)`` of a FrankaKitchen env, through wrappers and the project's env.

    Accepts a gymnasium env (wrapped or not) whose unwrapped object exposes ``model`` and
    ``data`` (gymnasium-robotics' KitchenEnv does), or a ``(model, data, dt)`` tuple.
    """
    if isinstance(env, tuple) and len(env) == 3:
        return env
    seen = []
    obj = env
    for _ in range(16):
        seen.append(type(obj).__name__)
        model, data = getattr(obj, "model", None), getattr(obj, "data", None)
        if model is not None and data is not None and hasattr(model, "nq"):
            return model, data, _control_dt(obj, model)
        nxt = None
        for attr in ("unwrapped", "env", "kitchen", "sim_env"):
            cand = getattr(obj, attr, None)
            if cand is not None and cand is not obj:
                nxt = cand
                break
        if nxt is None:
            break
        obj = nxt
    raise TypeError(
        f"cannot find a MuJoCo model/data on {type(env).__name__} (looked through {seen}); "
        "pass a FrankaKitchen env or a (model, data, dt) tuple"
    )


def _control_dt(obj, model) -> float:
    for holder in (obj, getattr(obj, "robot_env", None)):
        dt = getattr(holder, "dt", None) if holder is not None else None
        if isinstance(dt, (int, float)) and dt > 0:
            return float(dt)
    frame_skip = getattr(obj, "frame_skip", None) or getattr(getattr(obj, "robot_env", None), "frame_skip", 40)
    return float(model.opt.timestep * frame_skip)


class Scene:
    """Named access to the kitchen state for one model/data pair."""

    def __init__(self, model, data, dt: float):
        import mujoco

        self._mj = mujoco
        self.model, self.data, self.dt = model, data, dt
        self.kin = ArmKinematics(model)

    def _id(self, obj, name: str) -> int:
        i = self._mj.mj_name2id(self.model, obj, name)
        if i < 0:
            kind = str(obj).split(".")[-1].replace("mjOBJ_", "").lower()
            raise KeyError(f"the kitchen model has no {kind} named {name!r}")
        return int(i)

    def ee(self) -> Pose:
        return self.kin.ee_pose(self.data)

    def site(self, name: str) -> Pose:
        i = self._id(self._mj.mjtObj.mjOBJ_SITE, name)
        return Pose(self.data.site_xpos[i].copy(), self.data.site_xmat[i].reshape(3, 3).copy())

    def body(self, name: str) -> Pose:
        i = self._id(self._mj.mjtObj.mjOBJ_BODY, name)
        return Pose(self.data.xpos[i].copy(), self.data.xmat[i].reshape(3, 3).copy())

    def geom(self, body: str, index: int = 0) -> tuple[Pose, np.ndarray]:
        """Pose and size of the ``index``-th colliding geom of ``body``."""
        b = self._id(self._mj.mjtObj.mjOBJ_BODY, body)
        geoms = [
            g for g in range(self.model.ngeom)
            if self.model.geom_bodyid[g] == b and (self.model.geom_contype[g] or self.model.geom_conaffinity[g])
        ]
        g = geoms[index]
        pose = Pose(self.data.geom_xpos[g].copy(), self.data.geom_xmat[g].reshape(3, 3).copy())
        return pose, self.model.geom_size[g].copy()

    def joint(self, name: str) -> JointFrame:
        j = self._id(self._mj.mjtObj.mjOBJ_JOINT, name)
        kind = {int(self._mj.mjtJoint.mjJNT_HINGE): "hinge", int(self._mj.mjtJoint.mjJNT_SLIDE): "slide"}.get(
            int(self.model.jnt_type[j])
        )
        if kind is None:
            raise ValueError(f"joint {name!r} is not a hinge or slide joint")
        return JointFrame(
            kind,
            self.data.xaxis[j].copy(),
            self.data.xanchor[j].copy(),
            float(self.data.qpos[self.model.jnt_qposadr[j]]),
        )

    def qpos(self, joint: str) -> np.ndarray:
        """All qpos entries of ``joint`` (7 for a free joint, 1 otherwise)."""
        j = self._id(self._mj.mjtObj.mjOBJ_JOINT, joint)
        start = self.model.jnt_qposadr[j]
        width = {0: 7, 1: 4}.get(int(self.model.jnt_type[j]), 1)
        return self.data.qpos[start:start + width].copy()

    def fingers(self) -> float:
        """Mean finger opening (metres per finger)."""
        return float(self.data.qpos[self.kin.finger_qpos].mean())
