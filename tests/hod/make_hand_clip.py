"""Regenerate ``data/shadow_hand_cup.npz``: a 3-frame clip of a right hand holding a cup, for the
``mediapipe`` detector tests (they need a hand MediaPipe really detects, and no photo of a hand
ships with any package this project uses).

The hand is the Shadow Dexterous Hand of gymnasium-robotics (a right hand: its thumb sits on the
index-finger side of the palm normal, ``thumb = fingers x palm_normal``), skin-coloured, with its
fingers curled around a blue cylinder ("cup"), rendered by MuJoCo against the plain floor. Hand and
cup move together across the clip. Ground-truth boxes come from MuJoCo's segmentation render: the
hand is every geom of ``robot0:palm`` and the bodies below it, the cup is the cylinder.

    MUJOCO_GL=egl python tests/hod/make_hand_clip.py     # needs the robot extra (mujoco, gymnasium-robotics)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "data" / "shadow_hand_cup.npz"
H, W = 256, 320
CAMERA = dict(azimuth=150.0, elevation=30.0, distance=0.45)
SHIFTS = (-0.03, 0.0, 0.03)  # metres the hand and cup move along world x between frames
CURL = {"FFJ2": 0.8, "MFJ2": 0.8, "RFJ2": 0.8, "LFJ2": 0.8, "FFJ1": 0.5, "MFJ1": 0.5, "RFJ1": 0.5, "LFJ1": 0.5,
        "THJ4": 1.0, "THJ1": 0.3}


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min() / W, ys.min() / H, (xs.max() + 1) / W, (ys.max() + 1) / H]


def main() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import gymnasium_robotics
    import mujoco

    xml = Path(gymnasium_robotics.__file__).parent / "envs/assets/hand/reach.xml"
    spec = mujoco.MjSpec.from_file(str(xml))
    m0 = spec.compile()
    d0 = mujoco.MjData(m0)
    mujoco.mj_forward(m0, d0)
    palm = d0.body("robot0:palm")
    cup_pos = palm.xpos + palm.xmat.reshape(3, 3) @ np.array([0.0, -0.045, 0.06])  # palm side, mid-palm
    cup = spec.worldbody.add_body(name="cup", pos=cup_pos, mocap=True)
    cup.add_geom(name="cup", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.03, 0.05, 0], rgba=[0.15, 0.3, 0.85, 1],
                 contype=0, conaffinity=0)
    m = spec.compile()
    d = mujoco.MjData(m)
    mat = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, "robot0:MatViz")
    m.mat_rgba[mat] = [0.87, 0.67, 0.55, 1]
    m.mat_specular[mat], m.mat_reflectance[mat] = 0.1, 0.0
    for joint, angle in CURL.items():
        d.qpos[m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "robot0:" + joint)]] = angle
    palm_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "robot0:palm")
    hand_bodies = {b for b in range(m.nbody) if _descends(m, b, palm_id)}
    hand_geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] in hand_bodies]
    cup_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "cup")
    mount = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "robot0:hand mount")
    mount_pos = m.body_pos[mount].copy()
    renderer = mujoco.Renderer(m, H, W)
    cam = mujoco.MjvCamera()
    frames, hand_boxes, cup_boxes = [], [], []
    for dx in SHIFTS:
        m.body_pos[mount] = mount_pos + [dx, 0, 0]
        d.mocap_pos[0] = cup_pos + [dx, 0, 0]
        mujoco.mj_forward(m, d)
        cam.lookat[:] = d0.body("robot0:palm").xpos  # fixed camera: the hand moves in the image
        cam.azimuth, cam.elevation, cam.distance = CAMERA["azimuth"], CAMERA["elevation"], CAMERA["distance"]
        renderer.update_scene(d, cam)
        frames.append(renderer.render().copy())
        renderer.enable_segmentation_rendering()
        renderer.update_scene(d, cam)
        seg = renderer.render()
        renderer.disable_segmentation_rendering()
        geom = np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1)  # sites share the id range
        hand_boxes.append(_box(np.isin(geom, hand_geoms)))
        cup_boxes.append(_box(geom == cup_geom))
    np.savez_compressed(OUT, frames=np.stack(frames), hand_boxes=np.array(hand_boxes), cup_boxes=np.array(cup_boxes),
                        times=np.arange(len(SHIFTS), dtype=np.float64) * 0.5)
    print(f"wrote {OUT}: hand boxes {np.round(hand_boxes, 3).tolist()}, cup boxes {np.round(cup_boxes, 3).tolist()}")


def _descends(m, body: int, ancestor: int) -> bool:
    while body > 0:
        if body == ancestor:
            return True
        body = m.body_parentid[body]
    return False


if __name__ == "__main__":
    main()
