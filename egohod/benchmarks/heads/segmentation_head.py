"""What every action-segmentation head shares: the training settings, the interface and the loss.

A segmentation head maps features ``[B, D, T]`` and a mask ``[B, 1, T]`` (1 on real frames, 0 on
padding) to per-stage class logits ``[S, B, C, T]``; every stage is trained, the last one
predicts. The loss is MS-TCN's (Farha & Gall, CVPR 2019), also used by ASFormer: per stage,
cross-entropy over the real frames plus ``smooth_weight`` x the truncated MSE between the
log-probabilities of neighbouring frames (the previous frame detached), clamped at
``smooth_clamp`` and averaged over classes and frame pairs.

The per-frame linear head (``linear``) is the no-temporal-context baseline: one 1x1 convolution,
so each frame is classified from its own feature.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import register_head

__all__ = ["TrainOptions", "SegmentationHead", "segmentation_loss", "LinearHead"]


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Training settings every segmentation head has (defaults: MS-TCN's)."""

    epochs: int = 50
    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int = 1                       # videos per step (padded and masked when > 1)
    smooth_weight: float = 0.15               # weight of the truncated-MSE smoothing term
    smooth_clamp: float = 16.0                # the truncation
    plateau_patience: Optional[int] = None    # halve lr after this many epochs without a lower loss


class SegmentationHead(nn.Module):
    """Base of the segmentation heads: ``forward(x [B, D, T], mask [B, 1, T]) -> [S, B, C, T]``."""

    head_name = "?"
    Options = TrainOptions

    def __init__(self, input_dim: int, num_classes: int, options):
        super().__init__()
        if input_dim < 1 or num_classes < 2:
            raise ValueError(f"{type(self).__name__}: input_dim={input_dim}, num_classes={num_classes}; "
                             "need a positive feature size and at least two classes")
        self.input_dim, self.num_classes, self.options = input_dim, num_classes, options


def segmentation_loss(stage_logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      smooth_weight: float, smooth_clamp: float) -> torch.Tensor:
    """Sum over stages of CE + ``smooth_weight`` x truncated MSE (see the module docstring).

    ``stage_logits [S, B, C, T]``, ``target [B, T]`` (class ids; padding may be anything),
    ``mask [B, 1, T]``.
    """
    valid = mask[:, 0, :] > 0
    tgt = target.masked_fill(~valid, -100)
    pair_mask = mask[:, :, 1:]
    loss = stage_logits.new_zeros(())
    for p in stage_logits:
        loss = loss + F.cross_entropy(p, tgt, ignore_index=-100)
        if smooth_weight and p.shape[-1] > 1:
            logp = F.log_softmax(p, dim=1)
            sq = (logp[:, :, 1:] - logp.detach()[:, :, :-1]) ** 2
            loss = loss + smooth_weight * torch.mean(sq.clamp(0, smooth_clamp) * pair_mask)
    return loss


@register_head("linear", task="segmentation")
class LinearHead(SegmentationHead):
    """Per-frame linear classifier (no temporal context): the baseline the temporal heads must beat."""

    @dataclasses.dataclass(frozen=True)
    class Options(TrainOptions):
        smooth_weight: float = 0.0

    def __init__(self, input_dim: int, num_classes: int, options):
        super().__init__(input_dim, num_classes, options)
        self.classifier = nn.Conv1d(input_dim, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.classifier(x) * mask).unsqueeze(0)
