"""The Franka Kitchen simulator: gymnasium-robotics' FrankaKitchen-v1 model and control law.

What is reused from ``FrankaKitchen-v1`` (gymnasium-robotics 1.4.2): the MJCF model
(``kitchen_env_model.xml``), the simulation timestep (0.002 s), the frame skip (40 substeps per
control step, i.e. ``dt = 0.08 s``, a 12.5 Hz control rate), the action semantics and the joint
bounds of ``franka_config.xml``. Its environment class is not used directly because its reset
cannot randomise the kitchen, reuses velocities by reference and adds observation noise that also
drives its controller. The control law is reproduced exactly (a test checks it against
FrankaKitchen-v1 step by step):

    action a in [-1, 1]^9  ->  v = clip(2 a, vel_bound)            (rad/s or m/s)
    ctrl = clip(q_observed + v * dt, pos_bound)                    (position actuators)
    mujoco.mj_step(model, data, nstep=40)

Indices: ``qpos`` has 30 entries (9 robot: 7 arm + 2 fingers, then 21 object joints: 4 knob
hinges each followed by its burner slide, light switch, light, slide cabinet, left and right
hinge doors, microwave, kettle free joint [x, y, z, qw, qx, qy, qz]); ``qvel`` has 29.

Randomisation (classic R3M protocol), all drawn from the generator passed to :meth:`reset`:
- kitchen offset ``U(-kitchen_noise, kitchen_noise)^3`` added to the ``desk`` body (nominal
  position (-0.1, 0.75, 0), the same as the classic environment) and to the kettle's free-joint
  position (the kettle is not a child of ``desk`` in this model);
- robot joint noise ``joint_noise * (U(0, 1) - 0.5) * (joint range)`` on the 9 robot joints
  (mj_envs ``KitchenFrankaRandom``: ``joint_noise = 0.05``), clipped to the joint limits.

Options that make the reset follow R3M's ``kitchen_*-v3`` environments (RoboHive v0.0.5,
``mj_envs/envs/relay_kitchen/kitchen_multitask_v2.py``; ``docs/robot_protocol.md`` has the table):

- ``init_pose="r3m"``: the robot starts from mj_envs' ``key_qpos[1]`` / ``key_qvel[1]`` (from an RPL
  demonstration, gripper open) instead of this model's ``key_qpos[0]`` with the gripper opened;
- ``desk_max_contacts=4``: the desk offset is redrawn while the initial state has more than 4
  contacts (R3M's ``KitchenFrankaRandomDesk``: ``while ncon > 4``);
- ``kettle_follows_desk=False``: the kettle stays where the keyframe puts it (in mj_envs it is not
  a child of the desk and is not moved); its contacts with a moved stove are what the rejection
  above catches.

The model is compiled with R3M's two cameras added (``R3M_MODEL_CAMERAS`` of ``envs.cameras``:
fixed in the world, tracking a kitchen body, exactly as written in mj_envs' ``franka_kitchen.xml``).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from functools import lru_cache

import numpy as np

FRAME_SKIP = 40
N_ROBOT = 9
DESK_BODY = "desk"
NOMINAL_DESK_POS = np.array([-0.1, 0.75, 0.0])
ACTION_SCALE = 2.0  # FrankaKitchen-v1: act_mid = 0, act_rng = 2
INIT_POSES = ("frankakitchen_v1", "r3m")
# mj_envs franka_kitchen.xml (RoboHive v0.0.5) <key> 1, robot part (7 arm joints + 2 fingers);
# R3M's kitchen_*-v3 envs start there (kitchen_multitask_v2.py: init_qpos = key_qpos[1]).
R3M_INIT_ROBOT_QPOS = (0.101020992, -1.76349747, 1.88974607, -2.4766171, 0.325189114, 0.82909441,
                       1.62463629, 0.039976038, 0.0399791002)
R3M_INIT_ROBOT_QVEL = (-0.0124094905, 0.000307730486, 0.0210558046, -0.0211170651, 0.0128676305,
                       0.0264535546, -0.00749515183, -0.000134369839, 0.000250969693)
# A desk draw whose contacts never drop to the limit (e.g. a limit below the resting kettle's own
# contacts) must fail loudly instead of looping forever.
MAX_DESK_DRAWS = 1000
ROBOT_JOINTS = (
    "robot:panda0_joint1", "robot:panda0_joint2", "robot:panda0_joint3", "robot:panda0_joint4",
    "robot:panda0_joint5", "robot:panda0_joint6", "robot:panda0_joint7",
    "robot:panda0_finger_joint1", "robot:panda0_finger_joint2",
)
END_EFFECTOR_SITE = "end_effector"


def kitchen_asset_dir() -> str:
    """gymnasium-robotics' kitchen assets, located without importing the package (its import
    registers every robotics env and prints unrelated deprecation notices)."""
    import importlib.util

    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the kitchen model comes from gymnasium-robotics: "
                          "pip install 'gymnasium-robotics==1.4.2' (egohod[robot])")
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "envs", "assets", "kitchen_franka")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"kitchen assets not found at {path}; gymnasium-robotics 1.4.2 "
                                "ships them there")
    return path


def kitchen_model_path() -> str:
    return os.path.join(kitchen_asset_dir(), "kitchen_assets", "kitchen_env_model.xml")


@lru_cache(maxsize=1)
def robot_bounds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pos_bound [9, 2], vel_bound [9, 2], pos_noise_amp [9]) from FrankaKitchen-v1's config."""
    path = os.path.join(kitchen_asset_dir(), "franka_assets", "franka_config.xml")
    root = ET.parse(path).getroot()
    pos, vel, noise = [], [], []
    for i in range(N_ROBOT):
        node = root.find(f"qpos{i}")
        if node is None:
            raise ValueError(f"{path}: no <qpos{i}> entry")
        pos.append([float(x) for x in node.get("pos_bound").split()])
        vel.append([float(x) for x in node.get("vel_bound").split()])
        noise.append(float(node.get("pos_noise_amp").split()[0]))
    return np.array(pos), np.array(vel), np.array(noise)


def load_kitchen_model():
    """FrankaKitchen-v1's kitchen model with R3M's cameras (``envs.cameras.R3M_MODEL_CAMERAS``)
    added to the world body, as mj_envs' ``franka_kitchen.xml`` defines them. Cameras change no
    physics: the compiled model has the same bodies, joints and keyframe."""
    import mujoco

    from envs.cameras import R3M_MODEL_CAMERAS

    spec = mujoco.MjSpec.from_file(kitchen_model_path())
    for name, cam in R3M_MODEL_CAMERAS.items():
        spec.worldbody.add_camera(name=name, pos=list(cam.pos), fovy=cam.fovy,
                                  mode=mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY, targetbody=cam.target_body)
    return spec.compile()


class KitchenSim:
    """Model, data, control law, state access and reset randomisation of the kitchen."""

    def __init__(self, frame_skip: int = FRAME_SKIP, kitchen_noise: float = 0.1,
                 joint_noise: float = 0.05, obs_noise: float = 0.0, init_pose: str = "frankakitchen_v1",
                 desk_max_contacts: int | None = None, kettle_follows_desk: bool = True):
        import mujoco

        if init_pose not in INIT_POSES:
            raise ValueError(f"init_pose={init_pose!r}: expected one of {', '.join(INIT_POSES)}")
        if desk_max_contacts is not None and desk_max_contacts < 0:
            raise ValueError(f"desk_max_contacts must be >= 0 or None, got {desk_max_contacts}")
        self._mj = mujoco
        self.model = load_kitchen_model()
        self.init_pose = init_pose
        self.desk_max_contacts = desk_max_contacts
        self.kettle_follows_desk = bool(kettle_follows_desk)
        self.desk_draws = 0  # offsets drawn by the last reset (> 1 when the contact check rejected some)
        self.data = mujoco.MjData(self.model)
        self.frame_skip = int(frame_skip)
        self.kitchen_noise = float(kitchen_noise)
        self.joint_noise = float(joint_noise)
        self.obs_noise = float(obs_noise)
        self.pos_bound, self.vel_bound, self._pos_noise_amp = robot_bounds()
        self.desk_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, DESK_BODY)
        self.ee_site_id = self.site_id(END_EFFECTOR_SITE)
        self.kettle_qpos_adr = int(self.model.jnt_qposadr[self.joint_id("kettle")])
        self.robot_range = np.array([self.model.jnt_range[self.joint_id(j)] for j in ROBOT_JOINTS])
        # Initial state: the model's keyframe with the gripper open, or R3M's robot pose.
        self.init_qpos = self.model.key_qpos[0].copy()
        self.init_qvel = np.zeros(self.model.nv)
        if init_pose == "r3m":
            self.init_qpos[:N_ROBOT] = R3M_INIT_ROBOT_QPOS
            self.init_qvel[:N_ROBOT] = R3M_INIT_ROBOT_QVEL
        else:
            self.init_qpos[7:9] = self.robot_range[7:9, 1]
        self.kitchen_offset = np.zeros(3)
        self._observed_qpos = self.init_qpos[:N_ROBOT].copy()
        self._rng = np.random.default_rng(0)

    # ---------------------------------------------------------------- names
    def joint_id(self, name: str) -> int:
        jid = self._mj.mj_name2id(self.model, self._mj.mjtObj.mjOBJ_JOINT, name)
        if jid < 0:
            raise KeyError(f"no joint named {name!r} in the kitchen model")
        return jid

    def site_id(self, name: str) -> int:
        sid = self._mj.mj_name2id(self.model, self._mj.mjtObj.mjOBJ_SITE, name)
        if sid < 0:
            raise KeyError(f"no site named {name!r} in the kitchen model")
        return sid

    def joint_qpos_indices(self, names) -> np.ndarray:
        """qpos indices of the given joints (a free joint contributes its 7 entries)."""
        sizes = {0: 7, 1: 4, 2: 1, 3: 1}  # free, ball, slide, hinge
        out = []
        for name in names:
            jid = self.joint_id(name)
            adr = int(self.model.jnt_qposadr[jid])
            out.extend(range(adr, adr + sizes[int(self.model.jnt_type[jid])]))
        return np.array(out, dtype=np.int64)

    # ---------------------------------------------------------------- state
    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep) * self.frame_skip

    @property
    def state_dim(self) -> int:
        return int(self.model.nq + self.model.nv)

    def get_state(self) -> np.ndarray:
        """Flattened ``[qpos, qvel]`` (float64, length ``nq + nv`` = 59)."""
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def set_state(self, flat: np.ndarray) -> None:
        flat = np.asarray(flat, dtype=np.float64).reshape(-1)
        if flat.shape[0] != self.state_dim:
            raise ValueError(
                f"simulator state must have nq + nv = {self.model.nq} + {self.model.nv} = "
                f"{self.state_dim} entries ([qpos, qvel]); got {flat.shape[0]}"
            )
        nq = self.model.nq
        self.data.qpos[:] = flat[:nq]
        self.data.qvel[:] = flat[nq:]
        self.data.ctrl[:] = flat[:N_ROBOT]
        self._mj.mj_forward(self.model, self.data)
        self._observe()

    def set_kitchen_offset(self, offset) -> None:
        """Move the kitchen (``desk`` body) to nominal + ``offset``; does not move the kettle."""
        offset = np.asarray(offset, dtype=np.float64).reshape(3)
        self.kitchen_offset = offset.copy()
        self.model.body_pos[self.desk_id] = NOMINAL_DESK_POS + offset
        self._mj.mj_forward(self.model, self.data)

    # ---------------------------------------------------------------- reset / step
    def reset(self, rng: np.random.Generator) -> None:
        """Reset to the randomised initial state; all randomness comes from ``rng``.

        Draw order: the desk offset, then the robot joint noise (the order of the original
        reset, so seeds give the same states as before), then, when ``desk_max_contacts`` is set
        and the initial state has more contacts, new desk offsets until one passes."""
        self._rng = rng
        offset = self._draw_offset(rng)
        qpos = self.init_qpos.copy()
        if self.joint_noise > 0:
            span = self.robot_range[:, 1] - self.robot_range[:, 0]
            qpos[:N_ROBOT] += self.joint_noise * (rng.uniform(size=N_ROBOT) - 0.5) * span
            qpos[:N_ROBOT] = np.clip(qpos[:N_ROBOT], self.robot_range[:, 0],
                                     self.robot_range[:, 1])
        draw = 1
        self._place(qpos, offset)
        while self.desk_max_contacts is not None and self.data.ncon > self.desk_max_contacts:
            if self.kitchen_noise == 0:
                raise RuntimeError(f"the nominal kitchen has {self.data.ncon} contacts at reset, more than "
                                   f"desk_max_contacts={self.desk_max_contacts}: no desk offset can pass")
            if draw >= MAX_DESK_DRAWS:
                raise RuntimeError(f"no desk offset with <= {self.desk_max_contacts} contacts in "
                                   f"{MAX_DESK_DRAWS} draws; raise desk_max_contacts or lower kitchen_noise")
            draw += 1
            self._place(qpos, self._draw_offset(rng))
        self.desk_draws = draw
        self._observe()

    def _draw_offset(self, rng: np.random.Generator) -> np.ndarray:
        if self.kitchen_noise > 0:
            return rng.uniform(-self.kitchen_noise, self.kitchen_noise, size=3)
        return np.zeros(3)

    def _place(self, qpos: np.ndarray, offset: np.ndarray) -> None:
        """Initial state ``qpos`` (+ ``init_qvel``) with the desk at nominal + ``offset``
        (contacts computed: ``data.ncon``)."""
        mj = self._mj
        mj.mj_resetData(self.model, self.data)
        qpos = qpos.copy()
        if self.kettle_follows_desk:
            qpos[self.kettle_qpos_adr:self.kettle_qpos_adr + 3] += offset
        self.kitchen_offset = offset
        self.model.body_pos[self.desk_id] = NOMINAL_DESK_POS + offset
        self.data.qpos[:] = qpos
        self.data.qvel[:] = self.init_qvel
        self.data.ctrl[:] = qpos[:N_ROBOT]
        mj.mj_forward(self.model, self.data)

    def _observe(self) -> np.ndarray:
        """Robot joint positions as the controller sees them (plus optional noise)."""
        q = self.data.qpos[:N_ROBOT].copy()
        if self.obs_noise > 0:
            q += self.obs_noise * self._pos_noise_amp * self._rng.uniform(-1.0, 1.0, N_ROBOT)
        self._observed_qpos = q
        return q

    @property
    def observed_robot_qpos(self) -> np.ndarray:
        return self._observed_qpos

    def control(self, action: np.ndarray) -> np.ndarray:
        """The position targets FrankaKitchen-v1's velocity servo sends for ``action``."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(N_ROBOT), -1.0, 1.0)
        vel = np.clip(ACTION_SCALE * a, self.vel_bound[:, 0], self.vel_bound[:, 1])
        target = self._observed_qpos + vel * self.dt
        return np.clip(target, self.pos_bound[:, 0], self.pos_bound[:, 1])

    def step(self, action: np.ndarray) -> None:
        """One control step: set the position targets and advance ``frame_skip`` substeps."""
        self.data.ctrl[:] = self.control(action)
        self._mj.mj_step(self.model, self.data, nstep=self.frame_skip)
        self._observe()

    # ---------------------------------------------------------------- kinematics
    def site_pos(self, name: str) -> np.ndarray:
        return self.data.site_xpos[self.site_id(name)].copy()

    def end_effector_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.ee_site_id].copy()
