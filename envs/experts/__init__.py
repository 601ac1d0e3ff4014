"""Scripted experts for the Franka Kitchen tasks of :mod:`envs`.

Each expert is a small class registered under the task name it solves (the same names as
``envs.TASKS``). It reads the simulator state (sites, joints, bodies) and turns waypoints into
joint-velocity actions with damped least squares IK; it never writes to the simulation::

    import envs
    from envs.experts import make_expert

    env = envs.make("kitchen/microwave", camera=None, seed=0)
    expert = make_expert("microwave")
    obs, info = env.reset()
    expert.reset(env)
    for _ in range(50):
        obs, reward, terminated, truncated, info = env.step(expert.act(env))
    info["success"]

``python -m envs.experts.evaluate --tasks all --seeds 100`` measures their success rates.
"""
from __future__ import annotations

from typing import Callable

_EXPERTS: dict[str, Callable] = {}


def register_expert(task: str):
    """Class decorator registering an expert class for ``task``."""

    def deco(cls):
        if task in _EXPERTS and _EXPERTS[task] is not cls:
            raise ValueError(f"an expert for task {task!r} is already registered ({_EXPERTS[task].__name__})")
        cls.task = task
        _EXPERTS[task] = cls
        return cls

    return deco


def _load_builtin() -> None:
    from . import hinge_cabinet, tasks  # noqa: F401  (register the experts)


def list_experts() -> list[str]:
    """Task names that have a scripted expert (sorted)."""
    _load_builtin()
    return sorted(_EXPERTS)


def make_expert(task: str, **kwargs):
    """A fresh expert for ``task`` (``"microwave"`` or ``"kitchen/microwave"``)."""
    _load_builtin()
    name = task.split("/", 1)[1] if task.startswith("kitchen/") else task
    if name not in _EXPERTS:
        raise KeyError(f"no scripted expert for task {task!r}; experts exist for: {', '.join(sorted(_EXPERTS))}")
    return _EXPERTS[name](**kwargs)


__all__ = ["list_experts", "make_expert", "register_expert"]
