"""The registered environments: one small factory per variant, named after it."""
from __future__ import annotations

from envs.kitchen_env import KitchenTaskEnv
from envs.kitchen_tasks import get_task
from envs.registry import register_env


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
