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
| right   | (-0.1, 0.55, 2.2)     | 2.3      | 130     | -25       | microwave from the right, stove, knobs, cabinets |

The arm is visible in all three views.
"""
from __future__ import annotations

from dataclasses import dataclass


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

# Model cameras that can also be rendered by name (not part of the protocol).
MODEL_CAMERAS = ("left_cap", "right_cap")


def list_cameras() -> list[str]:
    """Names accepted by ``camera=`` in :func:`envs.make` (protocol cameras only)."""
    return list(CAMERAS)


def get_camera(name: str) -> CameraSpec:
    """The spec of a protocol camera or of a camera defined in the kitchen model."""
    if name in CAMERAS:
        return CAMERAS[name]
    if name in MODEL_CAMERAS:
        return CameraSpec(name, model_camera=name)
    raise KeyError(
        f"unknown camera {name!r}; valid cameras: {', '.join(list(CAMERAS) + list(MODEL_CAMERAS))}"
    )
