"""Expert for ``hinge_cabinet``: swing the hinged cabinet door (the env task's joint) open."""
from __future__ import annotations

import numpy as np

from . import register_expert
from .base import FORWARD, Waypoint, WaypointExpert
from .kinematics import FINGER_OPEN, Pose, rotation_about
from .rate_ik import solve_ik_rate_limited
from .scene import Scene
from .tasks import VERTICAL_BAR


def _unit_xy(v: np.ndarray) -> np.ndarray:
    v = np.array([v[0], v[1], 0.0])
    return v / max(np.linalg.norm(v), 1e-9)


@register_expert("hinge_cabinet")
class HingeCabinetExpert(WaypointExpert):
    """Fork push (prototype)."""

    joint, site, default_goal = "right_hinge_cabinet", "hinge_site2", 1.45
    overshoot = 0.2
    lead = 0.15
    finger_gap = 0.018  # finger inner face (0.04 from the EE) minus the bar radius (0.022)
    press = 0.025
    depth = 0.015
    contact_height = 0.12  # EE height above the bar's lower end while pushing (m)
    below = 0.03            # EE height below the bar's lower end while lining up (m)
    align_in, align_out = 0.01, 0.04  # horizontal EE-bar distance: rise fully / not at all
    min_door_yaw = 0.2
    max_door_yaw = np.pi / 2
    step_bound = np.full(7, 0.064)
    rate_lead = 0.3
    rate_iterations = 20
    rate_damping = 0.1
    joint_weights = None
    weight_phases = ("push",)
    posture = None
    align_yaw = None
    max_depth_lead = 0.02
    yaw_schedule = None
    yaw_weight = 0.2

    def __init__(self, goal=None):
        super().__init__(goal)
        self._yaw_locked = False

    @property
    def target_value(self) -> float:
        return float(self.goal[0]) if self.goal is not None else float(self.default_goal)

    # -- geometry -------------------------------------------------------------------------
    def _bar(self, scene: Scene):
        """(centre, lower end height) of the handle bar."""
        c = scene.site(self.site).pos
        return c, c[2] - self._bar_half

    def _find_bar_half_length(self, scene: Scene) -> float:
        mj = scene._mj
        model, data = scene.model, scene.data
        j = scene._id(mj.mjtObj.mjOBJ_JOINT, self.joint)
        body = model.jnt_bodyid[j]
        site = scene.site(self.site).pos
        best, half = np.inf, None
        for g in range(model.ngeom):
            if model.geom_bodyid[g] == body and model.geom_type[g] == mj.mjtGeom.mjGEOM_CYLINDER:
                d = np.linalg.norm(data.geom_xpos[g] - site)
                if d < best:
                    best, half = d, float(model.geom_size[g][1])
        if half is None:
            raise ValueError(f"no cylinder handle on the body of joint {self.joint!r}")
        return half

    def align_pose(self, scene: Scene) -> Pose:
        """Under the bar's lower end, rising onto it as the hand lines up with it (funnel)."""
        c, end = self._bar(scene)
        ee = scene.ee()
        point = _unit_xy(ee.rot[:, 2])
        slot = c - point * self.depth
        off = np.hypot(*(ee.pos[:2] - slot[:2]))
        rise = float(np.clip((self.align_out - off) / (self.align_out - self.align_in), 0.0, 1.0))
        z = end - self.below + rise * (self.below + self.contact_height)
        # heading free, but not turned left of the door's normal (the push would lose its lever)
        heading = np.arctan2(point[1], point[0])
        jf = scene.joint(self.joint)
        rel = (heading - jf.value + np.pi) % (2 * np.pi) - np.pi
        self._align_locked = rel > self.max_door_yaw
        yaw = self.max_door_yaw - rel + heading - np.pi / 2 if self._align_locked else heading - np.pi / 2
        rot = rotation_about([0.0, 0.0, 1.0], yaw) @ FORWARD
        return Pose(np.array([slot[0], slot[1], z]), rot)

    def _align_axes(self, target: Pose) -> np.ndarray:
        if getattr(self, "_align_locked", False):
            return target.rot[:, 1][None]
        return VERTICAL_BAR(target)

    def engaged(self, scene: Scene) -> bool:
        c, end = self._bar(scene)
        ee = scene.ee()
        slot = c - _unit_xy(ee.rot[:, 2]) * self.depth
        return bool(np.hypot(*(ee.pos[:2] - slot[:2])) < self.align_in + 0.008 and ee.pos[2] > end + 0.005)

    def push_pose(self, scene: Scene) -> Pose:
        """Fork push: the bar point carried ``lead`` ahead along the door's arc, with the hand
        displaced along its (horizontal) closing axis so that the trailing finger presses the bar
        by ``press`` metres, and ``depth`` behind the bar along its pointing axis."""
        jf = scene.joint(self.joint)
        c, end = self._bar(scene)
        bar = np.array([c[0], c[1], end + self.contact_height])
        aim = self.target_value + self.overshoot
        delta = float(np.clip(aim - jf.value, -self.lead, self.lead))
        ahead = jf.carry(Pose(bar, np.eye(3)), delta).pos
        ee = scene.ee()
        close = _unit_xy(ee.rot[:, 1])
        point = _unit_xy(ee.rot[:, 2])
        tangent = np.cross(jf.axis, bar - jf.anchor)
        if close @ tangent < 0:
            close = -close
        step = ahead - bar
        along = float(step @ point)
        if self.max_depth_lead is not None:
            step = step - point * (along - float(np.clip(along, -self.max_depth_lead, self.max_depth_lead)))
        pos = bar + step + close * (self.finger_gap + self.press) - point * self.depth
        # keep the hand's heading, unless it points less than min_door_yaw into the door (then
        # its body would touch the door face): turn it back to that angle
        self._yaw_locked = False
        heading = np.arctan2(point[1], point[0])
        rel = (heading - jf.value + np.pi) % (2 * np.pi) - np.pi
        if rel < self.min_door_yaw:
            heading += self.min_door_yaw - rel
            self._yaw_locked = True
        elif rel > self.max_door_yaw:
            heading += self.max_door_yaw - rel
            self._yaw_locked = True
        if self.yaw_schedule is not None:
            hold, alpha = self.yaw_schedule  # world heading held until the door passes `hold`, then
            heading = np.pi / 2 + max(0.0, jf.value + delta - hold)  # turns with the door
        rot = rotation_about([0.0, 0.0, 1.0], heading - np.pi / 2) @ FORWARD
        return Pose(pos, rot)

    def _push_axes(self, target: Pose) -> np.ndarray:
        if self.yaw_schedule is not None:
            return None
        if self._yaw_locked:
            return target.rot[:, 1][None]
        return VERTICAL_BAR(target)

    # -- plan -----------------------------------------------------------------------------
    def waypoints(self, scene: Scene) -> list[Waypoint]:
        task = self.env_task
        if task is not None and getattr(task, "name", None) == self.task and getattr(task, "joints", None):
            self.joint, self.site = task.joints[0], task.site
        self._bar_half = self._find_bar_half_length(scene)
        return [
            Waypoint("align", self.align_pose, FINGER_OPEN, until=self.engaged, max_steps=45,
                     free_axes=self._align_axes),
            Waypoint("push", self.push_pose, FINGER_OPEN, until=lambda s: False, max_steps=10**6,
                     free_axes=self._push_axes),
        ]

    def act(self, env=None) -> np.ndarray:
        if self.scene is None:
            if env is None:
                raise RuntimeError("call expert.reset(env) before expert.act()")
            self.reset(env)
        scene, st = self.scene, self.state
        while st.index < len(self.plan) - 1 and self.plan[st.index].done(scene, st.steps_in_waypoint):
            st.log.append((self.plan[st.index].name, st.steps_in_waypoint))
            st.index += 1
            st.steps_in_waypoint = 0
        wp = self.plan[st.index]
        target = wp.target(scene)
        command = self._lead(scene.ee(), target, self.rate_lead, 1.0)
        prefer = None
        if self.posture is not None and self.posture.get(wp.name) is not None:
            q = scene.data.qpos[scene.kin.arm_qpos]
            d = self.posture[wp.name] - q
            prefer = d / max(1.0, float(np.max(np.abs(d) / self.step_bound)))
        soft = None
        if wp.name == "push" and self.yaw_schedule is not None:
            soft = np.array([[0.0, 0.0, 1.0], target.rot[:, 1]])
        q_arm = solve_ik_rate_limited(scene.kin, scene.data, command, self.step_bound, iterations=self.rate_iterations,
                                      free_axes=wp.axes(target), damping=self.rate_damping, prefer=prefer,
                                      soft_axes=soft, soft_weight=self.yaw_weight,
                                      joint_weights=None if self.joint_weights is None or wp.name not in self.weight_phases
                                      else np.asarray(self.joint_weights, dtype=float))
        action = scene.kin.joint_action(scene.data, q_arm, wp.gripper, dt=scene.dt, gain=self.servo_gain)
        st.steps_in_waypoint += 1
        st.steps += 1
        return action

    __call__ = act
