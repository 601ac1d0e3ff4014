"""The single-task Franka Kitchen tasks: which joints, which goal, which threshold.

A task is solved at a control step when the L2 distance between its joint positions and its goal
is below ``threshold``; an episode is a success when the task was solved at more than
``SUCCESS_MIN_STEPS`` (5) control steps of the episode (the classic R3M protocol: "goal achieved
for more than 5 steps").

The five classic tasks follow the R3M / mj_envs ``kitchen_*-v3`` definitions (goal of one joint,
threshold 0.15 x the joint's range, which is how mj_envs defines ``solved``) wherever this model's
robot can reach them. The joints have the same names, ranges and signs in gymnasium-robotics'
``FrankaKitchen-v1`` model, but the robot stands elsewhere relative to the kitchen, and two classic
goals are out of the arm's reach here (the Franka reaches about 0.95 m from its shoulder,
``panda0_link2``; distances below are the handle site's, nominal kitchen, measured with
``mj_kinematics``):

- ``microwave``: the classic goal -1.25 rad (success needs the door past -0.94 rad) puts the
  handle 0.88 m (at -0.94) to 1.00 m (at -1.25) from the shoulder; over 100 seeds the expert
  reached it in 38%. This task uses FrankaKitchen-v1's own microwave goal, -0.75 rad, with the
  classic threshold 0.15 x range = 0.3141 (solved for door angles in [-1.064, -0.436]; the handle
  stays 0.80-0.88 m from the shoulder).
- ``hinge_cabinet``: the classic R3M task opens the LEFT door (``left_hinge_cabinet`` to -1.25),
  whose handle (``hinge_site1``) is 1.01 m from the shoulder when closed and 1.18 m at -1.25:
  unreachable at any door angle (0/100 seeds). This task opens the RIGHT door of the same
  cabinet, FrankaKitchen-v1's own ``hinge cabinet`` task: ``right_hinge_cabinet`` to 1.45 rad,
  with the classic threshold 0.15 x range = 0.2355 (solved above 1.2145 rad); its handle
  (``hinge_site2``) comes toward the robot as the door opens, 0.91 m -> 0.63 m.

The three extra tasks take FrankaKitchen-v1's own goals and its 0.3 L2 threshold.

| task          | joints (qpos index)                               | goal                         | threshold |
| ------------- | ------------------------------------------------- | ---------------------------- | --------- |
| microwave     | microwave (22)                                    | -0.75 rad (open; FK-v1 goal) | 0.3141    |
| slide_cabinet | slide_cabinet (19)                                | 0.44 m (open)                | 0.066     |
| hinge_cabinet | right_hinge_cabinet (21) — the RIGHT door (FK-v1) | 1.45 rad (open; FK-v1 goal)  | 0.2355    |
| light_switch  | light_switch (17)                                 | -0.7 (on)                    | 0.105     |
| knob          | knob_Joint_1 (9), bottom-right burner knob        | -1.57 rad (on)               | 0.2355    |
| kettle        | kettle free joint (23..29)                        | [-0.23, 0.75, 1.62, 0.99, 0, 0, -0.06] | 0.3 |
| top_burner    | knob_Joint_4 (15), top_left_burner (16)           | [-0.92, -0.01]               | 0.3       |
| bottom_burner | knob_Joint_2 (11), bottom_left_burner (12)        | [-0.88, -0.01]               | 0.3       |

Notes:
- The kettle goal (the top-left burner) is a world position: it moves with the randomised kitchen
  (``goal_moves_with_kitchen``), i.e. the kitchen offset is added to its x, y, z.
- ``site`` is the site the robot interacts with (used by ``object_state`` and the experts).
- Strict variant (``strict_success=True`` in ``envs.make``): mj_envs' ``solved`` also requires
  every other articulated object joint (``ARTICULATED_OBJECT_JOINTS``) to stay within 0.15 x its
  range of where the episode started; ``info["num_disturbed"]`` counts the joints that moved that
  far and ``env.disturbed_joints()`` names them (reported in both modes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SUCCESS_MIN_STEPS = 5  # success: solved at MORE than this many control steps of an episode
CLASSIC_THRESHOLD_FRACTION = 0.15  # mj_envs: solved when |goal - q| < 0.15 * joint range


@dataclass(frozen=True)
class KitchenTask:
    """Metadata of one single-task kitchen environment."""

    name: str
    joints: tuple[str, ...]          # model joint names; a free joint counts as its 7 qpos
    goal: tuple[float, ...]          # goal for the concatenated qpos of ``joints``
    threshold: float                 # solved when ||q - goal||_2 < threshold
    site: str                        # interaction site in the model
    description: str
    source: str                      # where the goal/threshold convention comes from
    goal_moves_with_kitchen: bool = False  # goal holds world xyz in its first 3 entries
    extra: dict = field(default_factory=dict)

    @property
    def goal_array(self) -> np.ndarray:
        return np.asarray(self.goal, dtype=np.float64)


def _classic(name, joint, goal, joint_range, site, description,
             source="R3M / mj_envs kitchen_*-v3") -> KitchenTask:
    return KitchenTask(
        name=name, joints=(joint,), goal=(goal,),
        threshold=round(CLASSIC_THRESHOLD_FRACTION * (joint_range[1] - joint_range[0]), 6),
        site=site, description=description, source=source,
    )


_REACHABLE_GOAL = ("goal of gymnasium-robotics FrankaKitchen-v1 (the classic one is out of reach), "
                   "threshold 0.15 x range as R3M / mj_envs")


TASKS: dict[str, KitchenTask] = {
    t.name: t
    for t in (
        _classic("microwave", "microwave", -0.75, (-2.094, 0.0), "microhandle_site",
                 "open the microwave door", source=_REACHABLE_GOAL),
        _classic("slide_cabinet", "slide_cabinet", 0.44, (0.0, 0.44), "slide_site",
                 "slide the top-right cabinet door open"),
        _classic("hinge_cabinet", "right_hinge_cabinet", 1.45, (0.0, 1.57), "hinge_site2",
                 "open the RIGHT door of the top-left hinged cabinet", source=_REACHABLE_GOAL),
        _classic("light_switch", "light_switch", -0.7, (-0.7, 0.0), "light_site",
                 "turn the light switch on"),
        _classic("knob", "knob_Joint_1", -1.57, (-1.57, 0.0), "knob1_site",
                 "turn the bottom-right burner knob on"),
        KitchenTask(
            name="kettle", joints=("kettle",), goal=(-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06),
            threshold=0.3, site="kettle_site",
            description="move the kettle onto the top-left burner",
            source="gymnasium-robotics FrankaKitchen-v1", goal_moves_with_kitchen=True,
        ),
        KitchenTask(
            name="top_burner", joints=("knob_Joint_4", "top_left_burner"), goal=(-0.92, -0.01),
            threshold=0.3, site="knob4_site", description="turn the top-left burner knob on",
            source="gymnasium-robotics FrankaKitchen-v1",
        ),
        KitchenTask(
            name="bottom_burner", joints=("knob_Joint_2", "bottom_left_burner"),
            goal=(-0.88, -0.01), threshold=0.3, site="knob2_site",
            description="turn the bottom-left burner knob on",
            source="gymnasium-robotics FrankaKitchen-v1",
        ),
    )
}


# The articulated object joints mj_envs checks in its strict ``solved`` (every object joint within
# 0.15 x its range of its goal, the goal of non-task joints being their initial value). The kettle
# (a free joint here, six slide/hinge joints there) is left out.
ARTICULATED_OBJECT_JOINTS = (
    "knob_Joint_1", "knob_Joint_2", "knob_Joint_3", "knob_Joint_4", "light_switch",
    "slide_cabinet", "left_hinge_cabinet", "right_hinge_cabinet", "microwave",
)


def get_task(name: str) -> KitchenTask:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(
            f"unknown kitchen task {name!r}; valid tasks: {', '.join(sorted(TASKS))}"
        ) from None
