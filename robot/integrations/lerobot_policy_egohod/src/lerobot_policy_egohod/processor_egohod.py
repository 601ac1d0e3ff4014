"""Pre/post-processing of the ``egohod`` policy: LeRobot's default pipelines (rename, batch,
device, normalise state/action with the dataset statistics; unnormalise the action)."""
from lerobot.processor.factory import make_default_pre_post_processors

from .configuration_egohod import EgohodConfig


def make_egohod_pre_post_processors(config: EgohodConfig, dataset_stats=None):
    return make_default_pre_post_processors(config, dataset_stats, normalizer_device=config.device)
