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

from egohod.registry import Registry

EXPERTS = Registry("expert", builtins=(f"{__name__}.hinge_cabinet", f"{__name__}.tasks"),
                   unknown="no scripted expert for task {name!r}", name_attr="task")


def register_expert(task: str):
    """Class decorator registering an expert class for ``task`` (also its ``task`` attribute)."""
    return EXPERTS.register(task)


def list_experts() -> list[str]:
    """Task names that have a scripted expert (sorted)."""
    return EXPERTS.list()


def make_expert(task: str, **kwargs):
    """A fresh expert for ``task`` (``"microwave"`` or ``"kitchen/microwave"``)."""
    return EXPERTS.get(task.removeprefix("kitchen/"))(**kwargs)


__all__ = ["list_experts", "make_expert", "register_expert"]
