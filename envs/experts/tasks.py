"""One small expert class per kitchen task, registered under the task's name in ``envs``.

Goals come from the environment (``env.goal()``); ``default_goal`` is only the fallback for a
bare simulator. Contact geometry is expressed relative to the task's site, so every expert
follows the randomised kitchen.
"""
from __future__ import annotations

import numpy as np

from . import register_expert
from .articulated import ArticulationExpert
from .base import FORWARD, bar_grip_axes
from .kinematics import rotation_about
from .push_object import PushObjectExpert

# free rotation axes (see ArmKinematics.solve_ik)
VERTICAL_BAR = staticmethod(bar_grip_axes((0.0, 0.0, 1.0)))  # grasp around a vertical handle
ANY_ROTATION = tuple(map(tuple, np.eye(3)))                   # position-only control


@register_expert("microwave")
class MicrowaveExpert(ArticulationExpert):
    """Grasp the vertical microwave handle and swing the door open along its hinge arc
    (pulled gently: a faster pull makes the handle creep out of the fingers)."""

    joint, site, default_goal = "microwave", "microhandle_site", -0.75
    free_axes = carry_free_axes = VERTICAL_BAR
    # near the top of the bar (free between its mounts at +-0.11 m): the handle is below the
    # shoulder, so its top is up to ~5 cm closer; the bar's centre is out of reach in ~5% of
    # the randomised kitchens (over 100 seeds: centre 55%, +0.085 m 95%, +0.095 m 96%)
    contact_offset = (0.0, 0.0, 0.095)
    # reach with only the heading free (the hand square to the bar in pitch) where IK says the
    # arm can: a pitched hand slid off the bar in ~10% of the kitchens; else also free the pitch
    prefer_free_axes = (((0.0, 0.0, 1.0),),)
    carry_speed = 0.04


@register_expert("slide_cabinet")
class SlideCabinetExpert(ArticulationExpert):
    """Push the slide door's vertical handle from its left side with the closed fingers,
    sliding the door open along +x."""

    joint, site, default_goal = "slide_cabinet", "slide_site", 0.44
    grasp = False
    contact_offset = (-0.05, 0.0, 0.0)
    approach = (0.0, -0.08, 0.0)
    free_axes = carry_free_axes = VERTICAL_BAR


@register_expert("light_switch")
class LightSwitchExpert(ArticulationExpert):
    """Push the light-switch lever from its right side with the closed fingertips; the hand is
    rolled 90 degrees so its narrow side leads and clears the wall."""

    joint, site, default_goal = "light_switch", "light_site", -0.7
    grasp = False
    contact_offset = (0.04, -0.01, 0.0)
    approach = (0.0, -0.08, 0.0)
    roll = np.pi / 2
    tilt = (0.0, 0.15)  # pointing slightly up: the lever is above the shoulder
    lead = 0.2  # rad: about 1.6 cm ahead along the lever's arc
    overshoot = 0.3  # the lever stops at its limit (-0.7); aim past it to press it home


class _KnobExpert(ArticulationExpert):
    """Turn a burner knob by pushing the left face of its vertical bar, near the top, with the
    closed fingertips: the contact point is carried along the knob's rotation (a 4 cm arc), so
    the hand only translates while the knob turns; no wrist roll is needed."""

    grasp = False
    contact_offset = (-0.035, -0.045, 0.032)
    lead = 1.0
    approach = (0.0, -0.08, 0.0)
    tilt = (-0.3, -0.5)  # pointing down and to the right: the knobs sit low, right of the arm
    carry_free_axes = ANY_ROTATION


@register_expert("knob")
class KnobExpert(_KnobExpert):
    """Bottom-right burner knob (the classic ``knob1_on``)."""

    joint, site, default_goal = "knob_Joint_1", "knob1_site", -1.57
    tilt = (-0.5, -0.5)  # this knob is the furthest right: point further right
    # move in as soon as the hand is near the pre-contact pose, and faster: the knob's damping
    # (2 N m s/rad) caps its turning rate, so the steps saved on the approach decide success
    pre_contact_tol, contact_speed = 0.06, 0.08


@register_expert("top_burner")
class TopBurnerExpert(_KnobExpert):
    """Top-left burner knob."""

    joint, site, default_goal = "knob_Joint_4", "knob4_site", -0.92


@register_expert("bottom_burner")
class BottomBurnerExpert(_KnobExpert):
    """Bottom-left burner knob."""

    joint, site, default_goal = "knob_Joint_2", "knob2_site", -0.88


@register_expert("kettle")
class KettleExpert(PushObjectExpert):
    """Push the kettle from behind, low on its body, onto the top-left burner (the goal from
    the env moves with the randomised kitchen)."""

    body = "kettle"
    default_goal = (-0.23, 0.75, 1.62)
    half_depth = 0.122   # the kettle body is a 0.244 m box
    push_height = 0.05   # below the box centre (0.058 above the origin): no tipping
    hand_rot = rotation_about([1.0, 0.0, 0.0], -0.5) @ FORWARD  # fingertips forward and down
    # the hand's heading is left free: with the kitchen shifted right (x offset > +0.05) the
    # kettle is close to the robot's centre line and a hand held square to the push direction
    # jammed the forearm (link 5) against the counter, 11/100 failures
    free_axes = ((0.0, 0.0, 1.0),)
