"""Damped least squares IK whose solution respects per-step joint-rate bounds.

``ArmKinematics.solve_ik`` returns the joint configuration that reaches a pose; when that
configuration is further than the servos can move in one control step, ``joint_action`` clips
each joint separately and the hand leaves the intended path (the saturated joints lag, the others
do not). :func:`solve_ik_rate_limited` instead bounds the displacement of every joint from the
current configuration (a box: what the servos can be asked to move in one step) and returns the
configuration inside that box whose end-effector pose is closest to the target, so the joints
that are not at their bound make up for the ones that are.
"""
from __future__ import annotations

import numpy as np

from .kinematics import ArmKinematics, Pose, free_rotation_projector, orientation_error


def bounded_dls_step(jac: np.ndarray, err: np.ndarray, lo: np.ndarray, hi: np.ndarray, damping: float) -> np.ndarray:
    """``dq`` minimising ``|jac dq - err|^2 + damping^2 |dq|^2`` subject to ``lo <= dq <= hi``.

    Active set: joints whose step leaves the box are fixed at the bound and the others re-solve
    the remaining error (at most one pass per joint).
    """
    n = jac.shape[1]
    if lo.shape != (n,) or hi.shape != (n,):
        raise ValueError(f"bounds must have shape ({n},), got {lo.shape} and {hi.shape}")
    dq = np.zeros(n)
    free = np.ones(n, dtype=bool)
    for _ in range(n + 1):
        if not free.any():
            break
        jf = jac[:, free]
        rhs = err - jac[:, ~free] @ dq[~free]
        dq[free] = np.linalg.solve(jf.T @ jf + damping**2 * np.eye(int(free.sum())), jf.T @ rhs)
        over = free & ((dq < lo - 1e-12) | (dq > hi + 1e-12))
        if not over.any():
            break
        dq[over] = np.clip(dq[over], lo[over], hi[over])
        free &= ~over
    return np.clip(dq, lo, hi)


def solve_ik_rate_limited(
    kin: ArmKinematics,
    data,
    target: Pose,
    step_bound: np.ndarray,
    *,
    iterations: int = 20,
    damping: float = 0.1,
    rot_weight: float = 0.3,
    free_axes=None,
    limit_margin: float = 0.05,
) -> np.ndarray:
    """Arm joint positions within ``step_bound`` (7,) radians of the current ones in ``data``
    (and inside the joint limits less ``limit_margin``) that bring the end effector closest to
    ``target``; ``free_axes`` (k x 3, world) are rotation axes about which the orientation is
    left free, ``rot_weight`` trades orientation (radians) against position (metres). The
    simulation itself is not touched (the solver works on ``kin.scratch``)."""
    step_bound = np.broadcast_to(np.asarray(step_bound, dtype=float), (7,))
    if np.any(step_bound <= 0):
        raise ValueError(f"step_bound must be positive, got {step_bound}")
    mj = kin._mj
    s = kin.scratch
    s.qpos[:] = data.qpos
    q0 = data.qpos[kin.arm_qpos].copy()
    lo_lim, hi_lim = kin.arm_range[:, 0] + limit_margin, kin.arm_range[:, 1] - limit_margin
    box_lo = np.maximum(-step_bound, np.minimum(lo_lim - q0, 0.0))
    box_hi = np.minimum(step_bound, np.maximum(hi_lim - q0, 0.0))
    weights = np.r_[np.ones(3), np.full(3, rot_weight)]
    project = free_rotation_projector(free_axes)
    x = np.zeros(7)
    jacp, jacr = np.zeros((3, kin.model.nv)), np.zeros((3, kin.model.nv))
    for _ in range(iterations):
        s.qpos[kin.arm_qpos] = q0 + x
        mj.mj_kinematics(kin.model, s)
        mj.mj_comPos(kin.model, s)
        pos = s.site_xpos[kin.ee_site]
        rot = s.site_xmat[kin.ee_site].reshape(3, 3)
        err = np.r_[target.pos - pos, project @ orientation_error(rot, target.rot)] * weights
        if np.linalg.norm(err) < 1e-4:
            break
        mj.mj_jacSite(kin.model, s, jacp, jacr, kin.ee_site)
        jac = np.vstack([jacp[:, kin.arm_dof], project @ jacr[:, kin.arm_dof]]) * weights[:, None]
        dx = bounded_dls_step(jac, err, box_lo - x, box_hi - x, damping)
        x = x + dx
        if np.abs(dx).max() < 1e-6:
            break
    return q0 + x
