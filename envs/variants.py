"""The registered environments: one small factory per variant, named after it.

``kitchen/<task>``: this package's kitchen (FrankaKitchen-v1 reset: its keyframe, desk offset
without contact check, kettle moved with the desk). ``kitchen_r3m/<task>``: the same tasks with
R3M's reset (``protocol=r3m``): mj_envs' initial robot pose, the desk redrawn while the initial
state has more than 4 contacts, the kettle left in place (``R3M_RESET``; docs/robot_protocol.md).
"""
from __future__ import annotations

from envs.kitchen_env import KitchenTaskEnv
from envs.kitchen_tasks import get_task
from envs.registry import register_env

# R3M's kitchen_*-v3 reset (mj_envs kitchen_multitask_v2.py: KitchenFrankaRandomDesk)
R3M_RESET = {"init_pose": "r3m", "desk_max_contacts": 4, "kettle_follows_desk": False}
R3M_TASKS = ("microwave", "slide_cabinet", "hinge_cabinet", "light_switch", "knob")


def _register_r3m(task: str) -> None:
    def factory(**kwargs) -> KitchenTaskEnv:
        return KitchenTaskEnv(get_task(task), **{**R3M_RESET, **kwargs})

    factory.__name__ = f"kitchen_r3m_{task}"
    factory.__doc__ = f"{task} with R3M's reset (envs.variants.R3M_RESET)."
    register_env(f"kitchen_r3m/{task}")(factory)


@register_env("kitchen/microwave")
def kitchen_microwave(**kwargs) -> KitchenTaskEnv:
    """Open the microwave door (FrankaKitchen-v1 goal -0.75 rad; classic -1.25 out of reach)."""
    return KitchenTaskEnv(get_task("microwave"), **kwargs)


@register_env("kitchen/slide_cabinet")
def kitchen_slide_cabinet(**kwargs) -> KitchenTaskEnv:
    """Slide the top-right cabinet door open (goal 0.44 m)."""
    return KitchenTaskEnv(get_task("slide_cabinet"), **kwargs)


@register_env("kitchen/hinge_cabinet")
def kitchen_hinge_cabinet(**kwargs) -> KitchenTaskEnv:
    """Open the RIGHT hinged cabinet door (FrankaKitchen-v1 goal 1.45 rad; see kitchen_tasks)."""
    return KitchenTaskEnv(get_task("hinge_cabinet"), **kwargs)


@register_env("kitchen/light_switch")
def kitchen_light_switch(**kwargs) -> KitchenTaskEnv:
    """Turn the light switch on (goal -0.7)."""
    return KitchenTaskEnv(get_task("light_switch"), **kwargs)


@register_env("kitchen/knob")
def kitchen_knob(**kwargs) -> KitchenTaskEnv:
    """Turn the bottom-right burner knob on (classic ``knob1_on``, goal -1.57 rad)."""
    return KitchenTaskEnv(get_task("knob"), **kwargs)


@register_env("kitchen/kettle")
def kitchen_kettle(**kwargs) -> KitchenTaskEnv:
    """Move the kettle onto the top-left burner (FrankaKitchen-v1 goal, 0.3 L2)."""
    return KitchenTaskEnv(get_task("kettle"), **kwargs)


@register_env("kitchen/top_burner")
def kitchen_top_burner(**kwargs) -> KitchenTaskEnv:
    """Turn the top-left burner knob on (FrankaKitchen-v1 goal, 0.3 L2)."""
    return KitchenTaskEnv(get_task("top_burner"), **kwargs)


@register_env("kitchen/bottom_burner")
def kitchen_bottom_burner(**kwargs) -> KitchenTaskEnv:
    """Turn the bottom-left burner knob on (FrankaKitchen-v1 goal, 0.3 L2)."""
    return KitchenTaskEnv(get_task("bottom_burner"), **kwargs)


for _task in R3M_TASKS:  # the five classic tasks with R3M's reset
    _register_r3m(_task)
