"""Fast headless offscreen renderer for one MuJoCo model.

As shipped, the kitchen model asks for a 2560x1920 offscreen buffer with 8x multisampling and
4096 px shadow maps, which makes a 224 px frame cost ~1 s on a CPU (llvmpipe). This renderer
sizes the offscreen buffer to the frame, turns multisampling off, disables shadows and
reflections (scene flags), tessellates primitives more coarsely and (optionally, on by default
in the kitchen env) renders lighter arm meshes (:mod:`envs.mesh_lod`): on llvmpipe the frame
cost is then dominated by vertex processing, not by pixels.

Frames are rendered at ``render_size`` and centre-cropped to ``image_size`` (256 -> 224 by
default, the usual resize-then-crop of image encoders).

One renderer per environment; environments in one process each hold their own GL context and
make it current before every frame. Vectorised environments use one process per environment.
"""
from __future__ import annotations

import atexit
import weakref

import numpy as np

from envs.cameras import CameraSpec
from envs.gl import GLBackendError, check_gl_context


_LIVE_RENDERERS: "weakref.WeakSet[OffscreenRenderer]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_live_renderers() -> None:
    # Free GL contexts while EGL/OSMesa is still initialised: freeing them from __del__ during
    # interpreter shutdown raises errors.
    for renderer in list(_LIVE_RENDERERS):
        renderer.close()


def _track(renderer: "OffscreenRenderer") -> None:
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        # Registered after mujoco's own GL atexit handler (which terminates the EGL display),
        # so it runs before it (atexit is last-in, first-out).
        atexit.register(_close_live_renderers)
        _ATEXIT_REGISTERED = True
    _LIVE_RENDERERS.add(renderer)


CROP_RATIO = 224 / 256  # image encoders' resize-256-then-crop-224 convention


def default_render_size(image_size: int) -> int:
    """Render size whose centre crop of ``image_size`` keeps the 224/256 ratio (224 -> 256)."""
    return int(round(image_size / CROP_RATIO))


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre crop an ``[H, W, C]`` frame to ``[size, size, C]`` (no copy when already that size)."""
    h, w = frame.shape[:2]
    if size > h or size > w:
        raise ValueError(f"crop size {size} is larger than the frame ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return frame[top:top + size, left:left + size]


# Tessellation of primitive geoms (cylinders, capsules, spheres) and of box faces: MuJoCo's
# defaults are 28 slices, 16 stacks, 4x4 quads per box face. At 224 px the coarser values
# change frames by ~0.4 grey levels on average and make CPU rendering ~1.5x faster.
FAST_NUMSLICES, FAST_NUMSTACKS, FAST_NUMQUADS = 12, 8, 1


def configure_fast_offscreen(model, width: int, height: int) -> None:
    """Size the model's offscreen buffer to the frame and switch off costly visual quality."""
    model.vis.global_.offwidth = int(width)
    model.vis.global_.offheight = int(height)
    model.vis.quality.offsamples = 0
    model.vis.quality.shadowsize = 0
    model.vis.quality.numslices = FAST_NUMSLICES
    model.vis.quality.numstacks = FAST_NUMSTACKS
    model.vis.quality.numquads = FAST_NUMQUADS


class OffscreenRenderer:
    """Renders RGB frames of ``data`` from protocol or model cameras.

    Args:
        model: the ``mujoco.MjModel`` (its ``vis`` settings are changed in place).
        render_size: square frame size rendered by OpenGL.
        image_size: centre-crop size of the returned frames (``<= render_size``).
        mesh_detail: fraction of the triangles kept in heavy visual-only meshes (the Franka
            arm); 1.0 renders the original meshes (see :mod:`envs.mesh_lod`).
    """

    def __init__(self, model, render_size: int = 256, image_size: int = 224,
                 mesh_detail: float = 1.0):
        import mujoco

        if image_size > render_size:
            raise ValueError(f"image_size {image_size} must be <= render_size {render_size}")
        self._mujoco = mujoco
        self.model = model
        self.render_size = int(render_size)
        self.image_size = int(image_size)
        configure_fast_offscreen(model, self.render_size, self.render_size)
        self.mesh_stats = None
        if mesh_detail < 1.0:  # before the GL context uploads the meshes
            from envs.mesh_lod import decimate_visual_meshes

            self.mesh_stats = decimate_visual_meshes(model, keep_fraction=mesh_detail)
        # Fail with a clear message when the backend cannot create a context at all.
        check_gl_context(8, 8).free()
        try:
            self._renderer = mujoco.Renderer(model, self.render_size, self.render_size)
        except Exception as exc:
            raise GLBackendError(f"could not create the MuJoCo offscreen renderer: {exc}") from exc
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._free_camera = mujoco.MjvCamera()
        self._free_camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        _track(self)

    def _camera(self, spec: CameraSpec):
        if not spec.is_free:
            return spec.model_camera
        cam = self._free_camera
        cam.lookat[:] = spec.lookat
        cam.distance = spec.distance
        cam.azimuth = spec.azimuth
        cam.elevation = spec.elevation
        return cam

    def render(self, data, camera: CameraSpec) -> np.ndarray:
        """An ``[image_size, image_size, 3]`` uint8 frame (a fresh array)."""
        if self._renderer is None:
            raise RuntimeError("render() called after close()")
        self._renderer.update_scene(data, self._camera(camera))
        frame = self._renderer.render()
        if self.image_size != self.render_size:
            frame = np.ascontiguousarray(center_crop(frame, self.image_size))
        return frame

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
