"""Environment registry: ``@register_env(name)`` on one small factory function per variant,
:func:`make` to create by name, :func:`list_envs` to list names.

Built-in variants live in :mod:`envs.variants` and are imported on first use, so importing
``envs`` stays cheap and does not import MuJoCo (whose GL backend must be chosen first).
"""
from __future__ import annotations

import fnmatch
from typing import Callable

_REGISTRY: dict[str, Callable] = {}
_BUILTINS_LOADED = False


def register_env(name: str):
    """Decorator registering ``fn(**kwargs) -> gymnasium.Env`` under ``name``."""

    def decorator(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"environment {name!r} is already registered by "
                             f"{_REGISTRY[name].__module__}.{_REGISTRY[name].__name__}")
        _REGISTRY[name] = fn
        return fn

    return decorator


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import envs.variants  # noqa: F401  (registers the kitchen tasks)


def list_envs(pattern: str = "*") -> list[str]:
    """Registered environment names matching a glob ``pattern`` (sorted)."""
    _load_builtins()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_env_fn(name: str) -> Callable:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown environment {name!r}; registered environments: {', '.join(list_envs())}"
        ) from None


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
