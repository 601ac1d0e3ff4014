"""Environment registry: ``@register_env(name)`` on one small factory function per variant,
:func:`make` to create by name, :func:`list_envs` to list names.

Built-in variants live in :mod:`envs.variants` and are imported on first use, so importing
``envs`` stays cheap and does not import MuJoCo (whose GL backend must be chosen first).
"""
from __future__ import annotations

from typing import Callable

from egohod.registry import Registry

ENVS = Registry("environment", builtins=("envs.variants",))  # imported on first use: registers the kitchen tasks


def register_env(name: str):
    """Decorator registering ``fn(**kwargs) -> gymnasium.Env`` under ``name``."""
    return ENVS.register(name)


def list_envs(pattern: str = "*") -> list[str]:
    """Registered environment names matching a glob ``pattern`` (sorted)."""
    return ENVS.list(pattern)


def get_env_fn(name: str) -> Callable:
    return ENVS.get(name)


def make(name: str, camera: str | None = "default", image_size: int = 224,
         seed: int | None = None, **kwargs):
    """Create a registered environment, e.g. ``make("kitchen/microwave", camera="left")``.

    Args:
        name: a registered name (see :func:`list_envs`).
        camera: camera of ``obs["rgb"]`` (``default``, ``left``, ``right``, or a model camera),
            or ``None`` for no rendering.
        image_size: side of the (square) ``rgb`` frames after the centre crop.
        seed: seed of the first ``reset()``; ``reset(seed=s)`` overrides it.
        kwargs: passed to the variant (``horizon``, ``render_size``, ``kitchen_noise``,
            ``joint_noise``, ``obs_noise``, ``terminate_on_success``, ``frame_skip``, ...).
    """
    from envs.cameras import get_camera
    from envs.gl import GLBackendError, ensure_gl_backend

    fn = get_env_fn(name)
    if camera is not None:
        get_camera(camera)  # unknown camera -> KeyError listing the valid ones, before any work
    # Choose the GL backend before mujoco is imported. Without a camera a missing backend is
    # not an error yet: render_camera() raises the same clear error if it is called later.
    try:
        ensure_gl_backend()
    except GLBackendError:
        if camera is not None:
            raise
    return fn(camera=camera, image_size=image_size, seed=seed, **kwargs)
