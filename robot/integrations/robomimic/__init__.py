"""robomimic (0.3.0) with egohod: import this package before robomimic builds models or envs.

Importing it registers

- ``EgoVideoCore`` (:mod:`.core`), selected with
  ``config.observation.encoder.rgb.core_class = "EgoVideoCore"``;
- the kitchen env type (:mod:`.env`), so ``EnvUtils.create_env_from_metadata`` builds the
  ``env_args`` of egohod demo files.

``egohod-robomimic-train`` (:mod:`.train`) runs robomimic's own training loop with both.
"""
from robot.integrations.robomimic.core import EgoVideoCore
from robot.integrations.robomimic.env import EnvKitchen, register_env_type

register_env_type()

__all__ = ["EgoVideoCore", "EnvKitchen", "register_env_type"]
