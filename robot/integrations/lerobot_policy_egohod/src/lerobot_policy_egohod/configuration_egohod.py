"""``EgohodConfig``: the ``egohod`` policy type of LeRobot."""
from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import NormalizationMode
from lerobot.optim.optimizers import AdamWConfig


@PreTrainedConfig.register_subclass("egohod")
@dataclass
class EgohodConfig(PreTrainedConfig):
    """Behaviour cloning on EgoVideo features.

    Args:
        encoder: a registered egohod video encoder (``egovideo_b``, ``egovideo_l``, ...).
        encoder_checkpoint: its weights file; ``None`` gives the seeded RANDOM WEIGHTS of
            ``(encoder, encoder_seed)`` (for tests and baselines only).
        trainable_encoder: fine-tune the encoder instead of keeping it frozen.
        hidden_dims: the MLP head on [camera embeddings, normalised state].
    """

    encoder: str = "egovideo_b"
    encoder_checkpoint: str | None = None
    encoder_seed: int = 0
    trainable_encoder: bool = False
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    optimizer_lr: float = 1e-3
    optimizer_weight_decay: float = 1e-4
    # images are normalised by the encoder with its own input spec, so LeRobot leaves them as is
    normalization_mapping: dict[str, NormalizationMode] = field(default_factory=lambda: {
        "VISUAL": NormalizationMode.IDENTITY,
        "STATE": NormalizationMode.MEAN_STD,
        "ENV": NormalizationMode.MEAN_STD,
        "ACTION": NormalizationMode.MEAN_STD,
    })

    def __post_init__(self):
        super().__post_init__()
        if not self.hidden_dims or any(d < 1 for d in self.hidden_dims):
            raise ValueError(f"hidden_dims must be positive sizes; got {self.hidden_dims}")

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError("the egohod policy needs at least one camera (observation.images.*)")
        if self.action_feature is None:
            raise ValueError("the egohod policy needs an 'action' output feature")

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay)

    def get_scheduler_preset(self):
        return None

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return [0]

    @property
    def reward_delta_indices(self) -> None:
        return None
