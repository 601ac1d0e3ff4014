"""ASFormer (Yi, Wen & Jiang, "ASFormer: Transformer for Action Segmentation", BMVC 2021), written
from the paper's description.

An encoder and ``num_decoders`` decoders, each ``num_layers`` blocks over ``num_f_maps``
channels. Block ``i`` of any of them: a kernel-3 convolution with dilation ``2**i`` + ReLU
(the feed-forward layer, placed first), then local self-attention inside windows of ``2**i``
frames on the instance-normalised result, weighted by ``alpha`` and added back, a 1x1
convolution, dropout, and the residual connection (masked). Attention uses queries and keys
reduced by ``r1`` and values reduced by ``r2`` (1x1 convolutions) and a ReLU before the output
projection. Padded frames of a batch take no part (the instance norm's statistics and the
attention weights use the real frames only), so padding does not change a video's outputs.

* The encoder drops whole input channels with probability ``channel_masking_rate`` while
  training (0.5 on GTEA in the paper's code, 0.3 elsewhere), projects to ``num_f_maps``, runs
  its blocks (``alpha = 1``) and predicts logits.
* Decoder ``s`` reads the previous prediction's probabilities (softmax x mask), and its blocks
  attend across: queries and keys from the decoder, values from the previous block's features
  (the encoder's for the first decoder); ``alpha = exp(-3 s)``, so later decoders change less.

Training defaults (the paper's code): Adam lr 5e-4, weight decay 1e-5, batch 1, 120 epochs,
the lr halved after 3 epochs without a lower training loss, and MS-TCN's loss on every output.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import register_head
from .segmentation_head import SegmentationHead, TrainOptions

__all__ = ["ASFormer", "local_attention", "masked_instance_norm"]


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
                    window: int) -> torch.Tensor:
    """Attention of every frame over the ``window`` frames around it (from ``t - window//2`` to
    ``t + window - 1 - window//2``); ``q, k [B, Cq, T]``, ``v [B, Cv, T]``, ``valid [B, 1, T]``
    (1 = real frame). Returns ``[B, Cv, T]``.

    Frames are processed in blocks of ``window`` queries, each against the ``2 * (window // 2) +
    window`` keys that can fall in any of its queries' windows, so memory is ``O(T * window)``.
    """
    B, C, T = q.shape
    half = window // 2
    nb = -(-T // window)
    pad_end = nb * window - T
    q = F.pad(q, (0, pad_end)).reshape(B, C, nb, window)
    span = window + 2 * half

    def windows(x):  # [B, X, T] -> [B, X, nb, span]
        return F.pad(x, (half, pad_end + half)).unfold(-1, span, window)

    kw, vw, mw = windows(k), windows(v), windows(valid.to(q.dtype))
    energy = torch.einsum("bcnq,bcnw->bnqw", q, kw) / math.sqrt(C)
    # query i of a block sees window positions i .. i + window - 1 of its span
    offs = torch.arange(span, device=q.device)[None, :] - torch.arange(window, device=q.device)[:, None]
    allowed = ((offs >= 0) & (offs < window))[None, None] & (mw[:, 0, :, None, :] > 0)  # [B, nb, window, span]
    # a query with no real frame in its window (padding) gets all-zero weights
    energy = energy.masked_fill(~allowed, torch.finfo(energy.dtype).min)
    attn = torch.softmax(energy, dim=-1) * allowed
    out = torch.einsum("bnqw,bcnw->bcnq", attn, vw).reshape(B, -1, nb * window)
    return out[:, :, :T]


def masked_instance_norm(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance norm (per video and channel, no affine) over the real frames only: the same as
    ``nn.InstanceNorm1d`` for an unpadded video, and unchanged by padding."""
    n = mask.sum(-1, keepdim=True).clamp_min(1)
    mean = (x * mask).sum(-1, keepdim=True) / n
    var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * mask


class LocalAttention(nn.Module):
    def __init__(self, channels: int, r1: int, r2: int, window: int):
        super().__init__()
        self.query = nn.Conv1d(channels, channels // r1, 1)
        self.key = nn.Conv1d(channels, channels // r1, 1)
        self.value = nn.Conv1d(channels, channels // r2, 1)
        self.proj = nn.Conv1d(channels // r2, channels, 1)
        self.window = window

    def forward(self, x: torch.Tensor, source: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Queries and keys from ``x``; values from ``source`` (cross attention) or ``x``."""
        v = self.value(x if source is None else source)
        out = local_attention(self.query(x), self.key(x), v, mask, self.window)
        return self.proj(F.relu(out)) * mask


class ASFormerBlock(nn.Module):
    def __init__(self, dilation: int, channels: int, r1: int, r2: int, alpha: float, dropout: float):
        super().__init__()
        self.feed_forward = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.attention = LocalAttention(channels, r1, r2, window=dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)
        self.alpha = alpha

    def forward(self, x: torch.Tensor, source: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.feed_forward(x))
        h = self.alpha * self.attention(masked_instance_norm(h, mask), source, mask) + h
        return (x + self.dropout(self.pointwise(h))) * mask


class _Stack(nn.Module):
    """Input projection, ``num_layers`` blocks (dilation ``2**i``), output logits."""

    def __init__(self, in_dim: int, num_classes: int, o, alpha: float):
        super().__init__()
        self.inp = nn.Conv1d(in_dim, o.num_f_maps, 1)
        self.blocks = nn.ModuleList(ASFormerBlock(2 ** i, o.num_f_maps, o.r1, o.r2, alpha, o.dropout)
                                    for i in range(o.num_layers))
        self.out = nn.Conv1d(o.num_f_maps, num_classes, 1)

    def forward(self, x, source, mask):
        h = self.inp(x) * mask
        for block in self.blocks:
            h = block(h, source, mask)
        return self.out(h) * mask, h


@register_head("asformer", task="segmentation")
class ASFormer(SegmentationHead):
    """Transformer for action segmentation: encoder + 3 decoders of 10 local-attention blocks."""

    @dataclasses.dataclass(frozen=True)
    class Options(TrainOptions):
        epochs: int = 120
        weight_decay: float = 1e-5
        plateau_patience: Optional[int] = 3
        num_decoders: int = 3
        num_layers: int = 10
        num_f_maps: int = 64
        r1: int = 2
        r2: int = 2
        dropout: float = 0.5
        channel_masking_rate: float = 0.3
        decoder_decay: float = 3.0          # alpha of decoder s = exp(-decoder_decay * s)

    def __init__(self, input_dim: int, num_classes: int, options: "ASFormer.Options"):
        super().__init__(input_dim, num_classes, options)
        o = options
        if o.num_f_maps % o.r1 or o.num_f_maps % o.r2 or o.num_layers < 1:
            raise ValueError(f"asformer: num_f_maps ({o.num_f_maps}) must be divisible by r1 ({o.r1}) and r2 ({o.r2}),"
                             f" num_layers >= 1 (got {o.num_layers})")
        self.channel_mask = nn.Dropout1d(o.channel_masking_rate)
        self.encoder = _Stack(input_dim, num_classes, o, alpha=1.0)
        self.decoders = nn.ModuleList(_Stack(num_classes, num_classes, o, alpha=math.exp(-o.decoder_decay * s))
                                      for s in range(o.num_decoders))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits, feats = self.encoder(self.channel_mask(x), None, mask)
        outs = [logits]
        for decoder in self.decoders:
            logits, feats = decoder(F.softmax(logits, dim=1) * mask, feats * mask, mask)
            outs.append(logits)
        return torch.stack(outs)
