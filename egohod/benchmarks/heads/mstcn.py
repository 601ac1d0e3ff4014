"""MS-TCN (Farha & Gall, "MS-TCN: Multi-Stage Temporal Convolutional Network for Action
Segmentation", CVPR 2019), written from the paper's description.

A stage is a 1x1 convolution to ``num_f_maps`` channels, ``num_layers`` dilated residual layers
(dilation ``2**i``: a kernel-3 dilated convolution, ReLU, a 1x1 convolution, dropout, the residual
sum, then the mask) and a 1x1 convolution to the class logits. The first stage reads the
features; each later stage reads the previous stage's class probabilities (softmax x mask), so
it refines the labelling with a receptive field of ``2**(num_layers+1) - 1`` frames per stage.
Defaults: 4 stages x 10 layers, 64 maps, dropout 0.5, Adam lr 5e-4, 50 epochs, batch 1, loss
CE + 0.15 x truncated MSE clamped at 16 (the paper's settings).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from . import register_head
from .segmentation_head import SegmentationHead, TrainOptions

__all__ = ["MSTCN", "DilatedResidualLayer", "TCNStage"]


class DilatedResidualLayer(nn.Module):
    def __init__(self, dilation: int, channels: int, dropout: float):
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        residual = self.dropout(self.pointwise(F.relu(self.dilated(x))))
        return (x + residual) * mask


class TCNStage(nn.Module):
    """One single-stage TCN: ``[B, in_dim, T] -> [B, num_classes, T]`` logits."""

    def __init__(self, in_dim: int, num_classes: int, num_layers: int, num_f_maps: int, dropout: float):
        super().__init__()
        self.inp = nn.Conv1d(in_dim, num_f_maps, 1)
        self.layers = nn.ModuleList(DilatedResidualLayer(2 ** i, num_f_maps, dropout) for i in range(num_layers))
        self.out = nn.Conv1d(num_f_maps, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) * mask  # padded frames stay zero, as a single unpadded video sees them
        for layer in self.layers:
            h = layer(h, mask)
        return self.out(h) * mask


@register_head("mstcn", task="segmentation")
class MSTCN(SegmentationHead):
    """Multi-stage temporal convolutional network (4 x 10 dilated residual layers, 64 maps)."""

    @dataclasses.dataclass(frozen=True)
    class Options(TrainOptions):
        num_stages: int = 4
        num_layers: int = 10
        num_f_maps: int = 64
        dropout: float = 0.5

    def __init__(self, input_dim: int, num_classes: int, options: "MSTCN.Options"):
        super().__init__(input_dim, num_classes, options)
        o = options
        if o.num_stages < 1 or o.num_layers < 1 or o.num_f_maps < 1:
            raise ValueError(f"mstcn: num_stages, num_layers and num_f_maps must be >= 1; got {o}")
        self.stages = nn.ModuleList(
            TCNStage(input_dim if s == 0 else num_classes, num_classes, o.num_layers, o.num_f_maps, o.dropout)
            for s in range(o.num_stages))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        outs = [self.stages[0](x, mask)]
        for stage in self.stages[1:]:
            outs.append(stage(F.softmax(outs[-1], dim=1) * mask, mask))
        return torch.stack(outs)
