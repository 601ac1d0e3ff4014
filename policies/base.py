"""The interface every policy head implements.

A head maps frozen visual features ``[.., feature_dim]`` and proprioception
``[.., proprio_dim]`` to actions ``[.., action_dim]``. Training samples are windows of
``seq_len`` consecutive steps of one demo (``seq_len == 1`` for memoryless heads), so a
batch is ``features [B, L, F]``, ``proprio [B, L, P]``, ``actions [B, L, A]``.

Inputs are standardised with statistics of the training set (``set_normalization``); these
statistics are buffers, so they travel in the state dict and the checkpoint. Dimensions that are
constant in the training set (std below ``min_std``, e.g. the pose of objects no demo touches)
are switched off (scale 0): they carry no information, and dividing a tiny deviation at
evaluation time by a near-zero std would feed the head huge out-of-distribution values. Rollouts call
``initial_state(num_envs)`` once per episode batch and ``act(features, proprio, state)`` per
step; memoryless heads return ``state`` unchanged.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn


class Policy(nn.Module):
    policy_name = "?"
    seq_len: int = 1

    @dataclasses.dataclass(frozen=True)
    class Options:
        pass

    def __init__(self, feature_dim: int, proprio_dim: int, action_dim: int, options: Any):
        super().__init__()
        if feature_dim < 0 or proprio_dim < 0 or feature_dim + proprio_dim == 0 or action_dim <= 0:
            raise ValueError(
                f"{type(self).__name__}: bad sizes feature_dim={feature_dim} proprio_dim={proprio_dim} "
                f"action_dim={action_dim}"
            )
        self.feature_dim, self.proprio_dim, self.action_dim = feature_dim, proprio_dim, action_dim
        self.options = options
        d = feature_dim + proprio_dim
        self.register_buffer("input_mean", torch.zeros(d))
        self.register_buffer("input_std", torch.ones(d))
        self.register_buffer("input_scale", torch.ones(d))
        # action standardisation (heads that regress actions, e.g. the MLP, learn (a - mean) / std)
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.register_buffer("action_std", torch.ones(action_dim))

    # --- normalisation -------------------------------------------------------------------
    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor, min_std: float = 1e-3) -> None:
        """Standardise inputs (features ++ proprio) with these per-dimension statistics;
        dimensions with ``std < min_std`` get scale 0 (see the module docstring)."""
        d = self.feature_dim + self.proprio_dim
        if mean.shape != (d,) or std.shape != (d,):
            raise ValueError(f"normalisation stats must have shape ({d},), got {tuple(mean.shape)}/{tuple(std.shape)}")
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)
        self.input_scale.copy_(torch.where(std >= min_std, 1.0 / std.clamp_min(min_std), torch.zeros_like(std)))

    def set_action_normalization(self, mean: torch.Tensor, std: torch.Tensor, min_std: float = 1e-3) -> None:
        """Per-dimension statistics of the training actions. A head that regresses actions
        (``mlp``) fits ``(a - mean) / std`` so that every action dimension weighs the same in
        its loss: the finger velocities of the kitchen experts are ~10x smaller than the arm's,
        and with raw MSE their small errors integrate into a drifting gripper. ``std`` is
        floored at ``min_std`` (a constant action dimension is then predicted as its mean)."""
        if mean.shape != (self.action_dim,) or std.shape != (self.action_dim,):
            raise ValueError(f"action stats must have shape ({self.action_dim},), got "
                             f"{tuple(mean.shape)}/{tuple(std.shape)}")
        self.action_mean.copy_(mean)
        self.action_std.copy_(std.clamp_min(min_std))

    def normalized_input(self, features: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        x = torch.cat([features, proprio], dim=-1) if self.proprio_dim else features
        return (x - self.input_mean) * self.input_scale

    # --- training / acting ----------------------------------------------------------------
    def loss(self, features: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def initial_state(self, num_envs: int) -> Any:
        return None

    @torch.no_grad()
    def act(self, features: torch.Tensor, proprio: torch.Tensor, state: Any = None):
        """Actions ``[N, action_dim]`` for one step of ``N`` environments, and the new state."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Everything needed to rebuild this head (stored in checkpoints)."""
        return {
            "name": self.policy_name,
            "feature_dim": self.feature_dim,
            "proprio_dim": self.proprio_dim,
            "action_dim": self.action_dim,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.options).items()},
        }
