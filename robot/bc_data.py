"""Training data of behaviour cloning on frozen features: per-step features, proprioception
and actions of the demos, sampled as windows of ``seq_len`` consecutive steps of one demo."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class BCBatch:
    features: torch.Tensor  # [B, L, F]
    proprio: torch.Tensor   # [B, L, P]
    actions: torch.Tensor   # [B, L, A]

    def to(self, device) -> "BCBatch":
        return BCBatch(self.features.to(device), self.proprio.to(device), self.actions.to(device))


class BCData:
    """All demo steps in memory as tensors (features are small: ``[sum T, D]`` float32)."""

    def __init__(self, features: list[np.ndarray], proprio: list[np.ndarray], actions: list[np.ndarray]):
        if not (len(features) == len(proprio) == len(actions)) or not features:
            raise ValueError(f"need the same number (>0) of episodes of features/proprio/actions, got "
                             f"{len(features)}/{len(proprio)}/{len(actions)}")
        for i, (f, p, a) in enumerate(zip(features, proprio, actions)):
            if not (len(f) == len(p) == len(a)):
                raise ValueError(f"episode {i}: {len(f)} feature steps, {len(p)} proprio steps, {len(a)} actions")
        self.lengths = np.array([len(f) for f in features], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.features = torch.from_numpy(np.concatenate(features).astype(np.float32))
        self.proprio = torch.from_numpy(np.concatenate(proprio).astype(np.float32))
        self.actions = torch.from_numpy(np.concatenate(actions).astype(np.float32))
        self._starts: dict[int, torch.Tensor] = {}

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def dims(self) -> dict:
        return {"feature_dim": self.features.shape[1], "proprio_dim": self.proprio.shape[1],
                "action_dim": self.actions.shape[1]}

    def input_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std over all steps of ``features ++ proprio`` (the policy's input)."""
        x = torch.cat([self.features, self.proprio], dim=1).double()
        return x.mean(0).float(), x.std(0, unbiased=False).float()

    def action_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std over all steps of the actions."""
        a = self.actions.double()
        return a.mean(0).float(), a.std(0, unbiased=False).float()

    def window_starts(self, seq_len: int) -> torch.Tensor:
        """Global indices where a window of ``seq_len`` steps inside one episode can start
        (episodes shorter than ``seq_len`` contribute one window, padded by their last step)."""
        starts = [s + np.arange(max(1, n - seq_len + 1)) for s, n in zip(self.starts, self.lengths)]
        return torch.from_numpy(np.concatenate(starts))

    def window_indices(self, starts: torch.Tensor, seq_len: int) -> torch.Tensor:
        ends = torch.from_numpy(self.starts + self.lengths - 1)
        episode = torch.from_numpy(np.searchsorted(self.starts, starts.numpy(), side="right") - 1)
        idx = starts[:, None] + torch.arange(seq_len)[None, :]
        return torch.minimum(idx, ends[episode][:, None])

    def sample(self, batch_size: int, seq_len: int, generator: torch.Generator) -> BCBatch:
        if seq_len not in self._starts:
            self._starts[seq_len] = self.window_starts(seq_len)
        valid = self._starts[seq_len]
        pick = valid[torch.randint(len(valid), (batch_size,), generator=generator)]
        idx = self.window_indices(pick, seq_len)
        return BCBatch(self.features[idx], self.proprio[idx], self.actions[idx])
