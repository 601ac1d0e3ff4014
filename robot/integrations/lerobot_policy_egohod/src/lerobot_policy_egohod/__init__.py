"""LeRobot policy plugin ``egohod``: frozen (or fine-tuned) EgoVideo features of each camera +
the robot state -> an MLP -> the action. Selected with ``--policy.type egohod`` once installed.

LeRobot's bring-your-own-policy contract: the config is registered with
``@PreTrainedConfig.register_subclass("egohod")`` in ``configuration_egohod``; LeRobot's factory
finds ``EgohodPolicy`` in ``modeling_egohod`` and ``make_egohod_pre_post_processors`` in
``processor_egohod`` by those names.
"""
try:
    import lerobot  # noqa: F401
except ImportError as exc:  # pragma: no cover - only inside a LeRobot environment
    raise ImportError("lerobot_policy_egohod is a LeRobot plugin: install lerobot first "
                      "(scripts/lerobot_venv.sh)") from exc

from .configuration_egohod import EgohodConfig
from .modeling_egohod import EgohodPolicy
from .processor_egohod import make_egohod_pre_post_processors

__all__ = ["EgohodConfig", "EgohodPolicy", "make_egohod_pre_post_processors"]
