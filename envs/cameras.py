"""The kitchen cameras, defined in one place.

Three fixed viewpoints named as in the classic protocol (R3M: ``default``, ``left``, ``right``).
They are free cameras fixed in the world frame (not attached to the kitchen), so the randomised
kitchen offset moves the kitchen in the image as it does in the classic environment. The model's
own ``left_cap`` / ``right_cap`` cameras look at a counter top from very close and are not used
for the protocol, but any model camera can be rendered by name with ``env.render_camera``.

MuJoCo free-camera convention: the camera sits at
``lookat - distance * [cos(el) cos(az), cos(el) sin(az), sin(el)]`` (degrees). The robot base is
at the origin facing +y, so azimuth 90 looks over the robot at the kitchen, smaller azimuths come
from the robot's left, larger ones from its right.

| name    | lookat (m)            | distance | azimuth | elevation | shows                                   |
| ------- | --------------------- | -------- | ------- | --------- | --------------------------------------- |
| default | (-0.25, 0.55, 2.15)   | 2.6      | 75      | -30       | overview: robot, microwave, stove, cabinets |
| left    | (-0.45, 0.5, 2.1)     | 2.0      | 55      | -35       | microwave, kettle, knobs, hinge cabinet |
| right   | (-0.1, 0.55, 2.2)     | 2.3      | 130     | -35       | microwave from the right, stove, knobs, cabinets |

The arm is visible in all three views.

One extra camera, ``ego``, is not part of the classic protocol: an egocentric-style viewpoint
above and behind the arm's base, a little to its left (the camera sits at about
(-0.42, -0.83, 3.31): 0.83 m behind the base, 1.5 m above it) looking down over the arm's
shoulder at the hand and the counter, so that the hand stays in view above the forearm. It
renders like the others (``env.render_camera("ego")``, ``envs.make(..., camera="ego")``) and is
the fourth view of the kitchen corpus (``robot/make_corpus.py``); :func:`list_cameras` keeps
returning the three protocol cameras (what ``robot/train_bc.py`` accepts as ``env.camera``), and
``list_cameras(extra=True)`` adds ``ego``.

| name    | lookat (m)            | distance | azimuth | elevation | shows                                   |
| ------- | --------------------- | -------- | ------- | --------- | --------------------------------------- |
| ego     | (-0.3, 0.5, 2.1)      | 1.8      | 85      | -42       | hand and workspace from behind the robot: microwave, kettle, knobs, switch, cabinet handles |

R3M's cameras (``left_cap2``, ``right_cap2``; ``protocol=r3m``) are model cameras, added to the
kitchen model as mj_envs defines them (RoboHive v0.0.5, ``mj_envs/envs/relay_kitchen/assets/
franka_kitchen.xml`` lines 57-58): fixed in the world frame at ``pos`` and turned every step to
look at a kitchen body (MuJoCo ``mode="targetbody"``: the camera's -z axis points at the body's
origin, its x axis stays horizontal). The robot base (0, 0, 1.8) and the desk (-0.1, 0.75, 0) sit
where they sit in mj_envs, so the positions are copied unchanged; the target bodies move with the
randomised desk, so these cameras follow the kitchen the way R3M's do. R3M's evaluation code
refuses a ``default`` kitchen camera (``r3meval/utils/obs_wrappers.py`` lines 185-187: "Camera not
supported"), and its kitchen runs use ``left_cap2`` and ``right_cap2`` only.

| name       | position (m, world)  | looks at body | vertical fov |
| ---------- | -------------------- | ------------- | ------------ |
| left_cap2  | (-1.4, -1.0, 1.8)    | ``knob 1``    | 45 deg       |
| right_cap2 | (1.3, -0.7, 3.4)     | ``microwave`` | 45 deg       |

:func:`camera_frame` and :func:`project_points` give the pinhole geometry of a free camera as
MuJoCo renders it (``mjv_updateCamera``: forward ``[cos(el) cos(az), cos(el) sin(az), sin(el)]``,
up ``[-sin(el) cos(az), -sin(el) sin(az), cos(el)]``, vertical field of view
``model.vis.global_.fovy``), including the renderer's centre crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraSpec:
    name: str
    lookat: tuple[float, float, float] | None = None
    distance: float | None = None
    azimuth: float | None = None
    elevation: float | None = None
    model_camera: str | None = None  # a camera defined in the MJCF model (fixed camera)

    @property
    def is_free(self) -> bool:
        return self.model_camera is None


CAMERAS: dict[str, CameraSpec] = {
    "default": CameraSpec("default", lookat=(-0.25, 0.55, 2.15), distance=2.6, azimuth=75.0,
                          elevation=-30.0),
    "left": CameraSpec("left", lookat=(-0.45, 0.5, 2.1), distance=2.0, azimuth=55.0,
                       elevation=-35.0),
    "right": CameraSpec("right", lookat=(-0.1, 0.55, 2.2), distance=2.3, azimuth=130.0,
                        elevation=-35.0),
}

# Free cameras outside the classic protocol (rendered by name; see the module docstring).
EXTRA_CAMERAS: dict[str, CameraSpec] = {
    "ego": CameraSpec("ego", lookat=(-0.3, 0.5, 2.1), distance=1.8, azimuth=85.0, elevation=-42.0),
}

@dataclass(frozen=True)
class TargetBodyCamera:
    """A camera fixed in the world that looks at a body (MJCF ``mode="targetbody"``)."""

    pos: tuple[float, float, float]
    target_body: str
    fovy: float = 45.0  # MJCF default; mj_envs sets none
    source: str = ""


_R3M_XML = "vikashplus/robohive v0.0.5 mj_envs/envs/relay_kitchen/assets/franka_kitchen.xml"
# R3M's kitchen cameras, transcribed from the mj_envs XML (see the module docstring).
R3M_MODEL_CAMERAS: dict[str, TargetBodyCamera] = {
    "left_cap2": TargetBodyCamera((-1.4, -1.0, 1.8), "knob 1", source=f"{_R3M_XML}:57"),
    "right_cap2": TargetBodyCamera((1.3, -0.7, 3.4), "microwave", source=f"{_R3M_XML}:58"),
}
# The protocol=r3m name of each view (R3M's demo folders: left_cap2/, right_cap2/).
R3M_CAMERA_FOR_VIEW = {"left": "left_cap2", "right": "right_cap2"}

# Model cameras that can also be rendered by name (left_cap / right_cap are FrankaKitchen-v1's own).
MODEL_CAMERAS = ("left_cap", "right_cap", *R3M_MODEL_CAMERAS)


def list_cameras(extra: bool = False, r3m: bool = False) -> list[str]:
    """The protocol cameras (``default``, ``left``, ``right``: what BC trains and evaluates on);
    with ``extra=True`` also the extra free cameras (``ego``), with ``r3m=True`` also R3M's
    cameras (``left_cap2``, ``right_cap2``)."""
    return list(CAMERAS) + (list(R3M_MODEL_CAMERAS) if r3m else []) + (list(EXTRA_CAMERAS) if extra else [])


def get_camera(name: str) -> CameraSpec:
    """The spec of a protocol camera, an extra camera or a camera defined in the kitchen model."""
    if name in CAMERAS:
        return CAMERAS[name]
    if name in EXTRA_CAMERAS:
        return EXTRA_CAMERAS[name]
    if name in MODEL_CAMERAS:
        return CameraSpec(name, model_camera=name)
    raise KeyError(
        f"unknown camera {name!r}; valid cameras: "
        f"{', '.join(list(CAMERAS) + list(EXTRA_CAMERAS) + list(MODEL_CAMERAS))}"
    )


def camera_frame(spec: CameraSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(position [3], axes [3, 3])`` of a free camera in the world frame; the rows of ``axes``
    are the camera's right, up and forward (viewing) directions, as MuJoCo places it."""
    if not spec.is_free:
        raise ValueError(f"camera {spec.name!r} is a model camera; its pose comes from the model "
                         "(data.cam_xpos / cam_xmat), not from a free-camera spec")
    az, el = np.deg2rad(spec.azimuth), np.deg2rad(spec.elevation)
    forward = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    up = np.array([-np.sin(el) * np.cos(az), -np.sin(el) * np.sin(az), np.cos(el)])
    right = np.cross(forward, up)
    position = np.asarray(spec.lookat, dtype=np.float64) - spec.distance * forward
    return position, np.stack([right, up, forward])


def project_points(points, spec: CameraSpec, fovy_deg: float, render_size: int,
                   image_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of world ``points [N, 3]`` in a frame rendered from free camera ``spec``.

    Returns ``(uv [N, 2], depth [N])``: ``u`` to the right and ``v`` down from the top-left
    corner of the returned frame (pixel centres at ``i + 0.5``), after the renderer's centre
    crop of the square ``render_size`` frame to ``image_size``; ``depth`` is the distance along
    the viewing direction (a point is in front of the camera when ``depth > 0``; ``uv`` is
    meaningless otherwise). ``fovy_deg`` is the vertical field of view (``model.vis.global_.fovy``).
    """
    pos, axes = camera_frame(spec)
    cam = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - pos) @ axes.T
    depth = cam[:, 2]
    focal = 0.5 * render_size / np.tan(np.deg2rad(fovy_deg) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(np.abs(depth) > 1e-9, depth, 1e-9)
        u = 0.5 * render_size + focal * cam[:, 0] / safe
        v = 0.5 * render_size - focal * cam[:, 1] / safe
    crop = (render_size - (render_size if image_size is None else int(image_size))) // 2
    return np.stack([u - crop, v - crop], axis=1), depth
