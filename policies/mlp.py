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
        hidden: tuple = (256, 256)        # widths of the hidden layers
        batchnorm: bool = True            # BatchNorm1d on the input (features ++ proprio)
        dropout: float = 0.0              # dropout after each hidden layer (0: none)
        action_limit: float = 1.0         # acting clips actions to [-action_limit, action_limit]
        normalize_actions: bool = True    # regress standardised actions (false: raw actions, as in R3M)

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


@register_policy("mlp_r3m")
class R3MMLPPolicy(Policy):
    """R3M's BC head, as its evaluation code builds it (facebookresearch/r3m, branch ``eval``:
    ``evaluation/r3meval/utils/fc_network.py`` and ``gaussian_mlp.py``):
    ``BatchNorm1d(features ++ proprio) -> [Linear, tanh] x len(hidden) -> Linear``, PyTorch's
    default initialisation with the last layer's weight and bias then multiplied by ``last_scale``
    (1e-2), trained with MSE on the raw demo actions (no input or action standardisation: the
    BatchNorm is the only input scaling; ``BC(set_transforms=False)``). Evaluation acts with the
    mean (``eval_mode=True``), here clipped to ``action_limit`` as the env clips anyway."""

    seq_len = 1

    @dataclasses.dataclass(frozen=True)
    class Options:
        hidden: tuple = (256, 256)        # widths of the tanh hidden layers
        last_scale: float = 1e-2          # the last layer's initial weight and bias are multiplied by this
        action_limit: float = 1.0         # acting clips actions to [-action_limit, action_limit]

    def __init__(self, feature_dim, proprio_dim, action_dim, options: "R3MMLPPolicy.Options"):
        super().__init__(feature_dim, proprio_dim, action_dim, options)
        d = feature_dim + proprio_dim
        self.bn = nn.BatchNorm1d(d)
        sizes = (d, *(int(h) for h in options.hidden), action_dim)
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            self.fc[-1].weight.mul_(options.last_scale)
            self.fc[-1].bias.mul_(options.last_scale)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """Actions (raw, not clipped)."""
        x = torch.cat([features, proprio], dim=-1) if self.proprio_dim else features
        lead = x.shape[:-1]
        out = self.bn(x.reshape(-1, x.shape[-1]))
        for layer in self.fc[:-1]:
            out = torch.tanh(layer(out))
        return self.fc[-1](out).reshape(*lead, self.action_dim)

    def loss(self, features, proprio, actions):
        return nn.functional.mse_loss(self(features, proprio), actions)

    @torch.no_grad()
    def act(self, features, proprio, state=None):
        lim = self.options.action_limit
        return self(features, proprio).clamp(-lim, lim), state
