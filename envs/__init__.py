"""Robot environments for egohod: Franka Kitchen tasks on gymnasium-robotics' model.

    import envs
    env = envs.make("kitchen/microwave", camera="left", image_size=224, seed=0)
    obs, info = env.reset()          # obs: rgb, proprio, state, object_state
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    info["success"]                  # task solved for more than 5 steps so far

``envs.list_envs()`` lists the tasks, ``envs.list_cameras()`` the cameras, ``envs.make_vec`` builds
an ``AsyncVectorEnv``. Importing this package does not import MuJoCo: the headless GL backend
(``MUJOCO_GL``: egl, then osmesa) is chosen by ``make`` before MuJoCo is loaded.
"""
from envs.cameras import CAMERAS, list_cameras
from envs.kitchen_tasks import TASKS, KitchenTask, get_task
from envs.registry import get_env_fn, list_envs, make, register_env
from envs.vector import make_vec

__all__ = [
    "CAMERAS", "TASKS", "KitchenTask", "get_env_fn", "get_task", "list_cameras", "list_envs",
    "make", "make_vec", "register_env",
]
