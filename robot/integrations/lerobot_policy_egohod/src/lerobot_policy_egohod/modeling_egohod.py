"""``EgohodPolicy``: EgoVideo features of each camera + state -> MLP -> action."""
import torch
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_STATE
from torch import nn

from robot.integrations.frame_encoder import FrameEncoder

from .configuration_egohod import EgohodConfig


class EgohodPolicy(PreTrainedPolicy):
    config_class = EgohodConfig
    name = "egohod"

    def __init__(self, config: EgohodConfig, dataset_stats=None, **kwargs):
        super().__init__(config)
        config.validate_features()
        self.config = config
        self.cameras = sorted(config.image_features)
        self.encoder = FrameEncoder(config.encoder, config.encoder_checkpoint, seed=config.encoder_seed,
                                    trainable=config.trainable_encoder)
        low_dim = [k for k in (OBS_STATE, OBS_ENV_STATE) if k in config.input_features]
        self.low_dim = low_dim
        width = len(self.cameras) * self.encoder.embed_dim + sum(config.input_features[k].shape[0] for k in low_dim)
        layers: list[nn.Module] = [nn.LayerNorm(width)]
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, config.action_feature.shape[0]))
        self.head = nn.Sequential(*layers)

    def get_optim_params(self):
        return [p for p in self.parameters() if p.requires_grad]

    def reset(self):
        pass

    def _features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.encoder(batch[cam]) for cam in self.cameras]
        parts += [batch[k].float() for k in self.low_dim]
        return torch.cat(parts, dim=-1)

    def predict_action_chunk(self, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
        return self.head(self._features(batch)).unsqueeze(1)

    @torch.no_grad()
    def select_action(self, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
        self.eval()
        return self.predict_action_chunk(batch)[:, 0]

    def forward(self, batch: dict[str, torch.Tensor], reduction: str = "mean"):
        target = batch[ACTION]
        if target.dim() == 3:  # [B, 1, action_dim] from action_delta_indices = [0]
            target = target[:, 0]
        pred = self.head(self._features(batch))
        per_item = ((pred - target) ** 2).mean(dim=-1)
        loss = per_item.mean() if reduction == "mean" else per_item
        return loss, {"mse": float(per_item.mean().detach())}
