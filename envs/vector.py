"""Vectorised kitchen environments: one process (and one GL context) per environment."""
from __future__ import annotations

from typing import Sequence


def _env_factory(name: str, camera, image_size: int, seed, kwargs: dict):
    def build():
        from envs.registry import make

        return make(name, camera=camera, image_size=image_size, seed=seed, **kwargs)

    return build


def make_vec(name: str, num_envs: int, camera: str | None = "default", image_size: int = 224,
             seeds: Sequence[int] | None = None, context: str | None = None, **kwargs):
    """A ``gymnasium.vector.AsyncVectorEnv`` of ``num_envs`` copies of ``name``.

    Each copy runs in its own process with its own renderer (several rendering environments
    sharing one process is the classic cause of black frames). ``seeds[i]`` seeds copy ``i``
    (default ``0 .. num_envs - 1``). The GL backend is chosen here, before the workers start,
    so they inherit ``MUJOCO_GL``. ``context`` is the multiprocessing start method
    (default ``forkserver`` where available: forking a process that already holds a GL context
    is unsafe).
    """
    import multiprocessing as mp

    from gymnasium.vector import AsyncVectorEnv

    from envs.cameras import get_camera
    from envs.gl import GLBackendError, ensure_gl_backend
    from envs.registry import get_env_fn

    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    get_env_fn(name)
    if camera is not None:
        get_camera(camera)
    try:  # chosen once here; the workers inherit MUJOCO_GL instead of probing each
        ensure_gl_backend()
    except GLBackendError:
        if camera is not None:
            raise
    seeds = list(range(num_envs)) if seeds is None else list(seeds)
    if len(seeds) != num_envs:
        raise ValueError(f"got {len(seeds)} seeds for {num_envs} environments")
    if context is None:
        context = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    fns = [_env_factory(name, camera, image_size, s, dict(kwargs)) for s in seeds]
    return AsyncVectorEnv(fns, context=context)
