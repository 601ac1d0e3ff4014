"""The classic frozen-encoder BC head (R3M protocol): BatchNorm on the input, MLP, MSE."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import Policy
from .registry import register_policy


@register_policy("mlp")
class MLPPolicy(Policy):
    """``BatchNorm1d(features ++ proprio) -> [Linear, ReLU] x len(hidden) -> Linear``, trained
    with mean squared error to the demo actions, standardised per dimension with the training
    statistics (``set_action_normalization``; ``normalize_actions=false`` regresses raw actions).
    Actions are clipped to ``action_limit``."""

    seq_len = 1

    @dataclasses.dataclass(frozen=True)
    class Options:
        hidden: tuple = (256, 256)
        batchnorm: bool = True
        dropout: float = 0.0
        action_limit: float = 1.0
        normalize_actions: bool = True

    def __init__(self, feature_dim, proprio_dim, action_dim, options: "MLPPolicy.Options"):
        super().__init__(feature_dim, proprio_dim, action_dim, options)
        d = feature_dim + proprio_dim
        layers: list[nn.Module] = [nn.BatchNorm1d(d)] if options.batchnorm else []
        for h in options.hidden:
            layers += [nn.Linear(d, int(h)), nn.ReLU()]
            if options.dropout > 0:
                layers.append(nn.Dropout(options.dropout))
            d = int(h)
        layers.append(nn.Linear(d, action_dim))
        self.net = nn.Sequential(*layers)

    def _net_out(self, features: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        x = self.normalized_input(features, proprio)
        lead = x.shape[:-1]
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*lead, self.action_dim)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """Actions (in the env's units, not clipped)."""
        y = self._net_out(features, proprio)
        return y * self.action_std + self.action_mean if self.options.normalize_actions else y

    def loss(self, features, proprio, actions):
        y = self._net_out(features, proprio)
        if self.options.normalize_actions:
            actions = (actions - self.action_mean) / self.action_std
        return nn.functional.mse_loss(y, actions)

    @torch.no_grad()
    def act(self, features, proprio, state=None):
        lim = self.options.action_limit
        return self(features, proprio).clamp(-lim, lim), state
