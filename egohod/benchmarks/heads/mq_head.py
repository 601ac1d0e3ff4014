"""An ActionFormer-style temporal detector for Ego4D Moment Queries on frozen clip features
(Zhang, Wu and Li, "ActionFormer: Localizing Moments of Actions with Transformers", ECCV 2022).

Why this head and not VSGN (the EgoHOD paper's): one single-stage, anchor-free network (no
anchors, no cross-scale graph, no boundary-adjustment stage) whose full Ego4D configuration is
public, and which scores higher on the same EgoVLP features (ActionFormer 20.6 mAP vs VSGN 11.4,
docs/benchmarks.md). Its numbers are therefore comparable with ActionFormer's Ego4D rows, not
with the paper's VSGN table.

The network, on features ``[B, T, D]`` (``T`` a multiple of ``2 ** (levels - 1)``, padded):

1. **Embedding**: ``embed_layers`` masked 1-D convolutions (kernel 3) + layer norm + ReLU, then a
   fixed sinusoidal position encoding (``abs_pe``).
2. **Pyramid**: ``stem_layers`` pre-norm transformer blocks at full rate, then ``levels - 1``
   blocks that each halve the rate (queries max-pooled with stride 2; ActionFormer uses strided
   depthwise convolutions) -- one output per level. Self-attention is local: a position
   attends to ``window`` positions around it (``window <= 1``: the whole sequence).
3. **Heads** shared by every level: a classification head (``head_layers`` convolutions, the last
   with ``num_classes`` sigmoid outputs, bias set to the prior ``cls_prior``) and a regression
   head (distances to the start and end, ReLU'd, times a learned per-level scale, in units of
   the level's stride).

Targets (:func:`assign_targets`): a point at grid position ``p`` (stride ``s``) is positive for a
moment whose centre is within ``center_radius * s`` of ``p`` (and inside the moment), when its
largest distance to the moment's boundaries lies in the level's regression range; with several
candidates the shortest moment wins. Losses: sigmoid focal loss (alpha 0.25, gamma 2) over every
valid point and class, plus the distance-IoU loss on positives, both divided by an exponential
moving average of the number of positives. Decoding (:func:`decode`): per level the top
``pre_nms_topk`` (point, class) scores above ``pre_nms_thresh``, segments from the regressed
distances, then per-class Gaussian soft-NMS (``nms_sigma``) down to ``max_segments``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import register_head

__all__ = ["ActionFormerHead", "assign_targets", "detection_losses", "decode", "soft_nms_1d", "segment_iou_1d"]


class _ChannelNorm(nn.LayerNorm):
    """Layer norm over the channels of ``[B, C, T]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _sinusoid(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class _Block(nn.Module):
    """Pre-norm transformer block on ``[B, T, C]``; ``downsample`` halves ``T`` first."""

    def __init__(self, dim: int, heads: int, window: int, dropout: float, downsample: bool):
        super().__init__()
        self.heads, self.window, self.downsample = heads, window, downsample
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def _allowed(self, mask: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, T]`` float mask: 0 where attention is allowed, very negative elsewhere."""
        t = mask.shape[1]
        ok = mask[:, None, None, :].expand(-1, 1, t, -1)
        if self.window > 1:
            idx = torch.arange(t, device=mask.device)
            ok = ok & ((idx[:, None] - idx[None, :]).abs() <= self.window // 2)
        return torch.zeros(ok.shape, device=mask.device).masked_fill(~ok, -1e30)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.downsample:
            x = F.max_pool1d(x.transpose(1, 2), 3, stride=2, padding=1).transpose(1, 2)
            mask = mask[:, ::2]
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=self._allowed(mask))
        keep = mask[:, :, None].to(x.dtype)
        x = (x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, t, c)))) * keep
        x = (x + self.drop(self.mlp(self.norm2(x)))) * keep
        return x, mask


class _SharedHead(nn.Module):
    """Convolutions shared by every pyramid level, ``[B, C, T] -> [B, out, T]``."""

    def __init__(self, dim: int, out: int, layers: int, kernel: int):
        super().__init__()
        self.body = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2) for _ in range(layers - 1))
        self.norms = nn.ModuleList(_ChannelNorm(dim) for _ in range(layers - 1))
        self.out = nn.Conv1d(dim, out, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.body, self.norms):
            x = F.relu(norm(conv(x))) * keep
        return self.out(x) * keep


@register_head("actionformer", task="mq")
class ActionFormerHead(nn.Module):
    """Multi-scale transformer detector: ``forward(x [B, T, D], mask [B, T])`` returns, per
    pyramid level, class logits ``[B, T_l, C]``, distances ``[B, T_l, 2]`` (stride units) and
    the level's mask."""

    @dataclass
    class Options:
        dim: int = 384                 # embedding / pyramid / head width (ActionFormer Ego4D)
        num_heads: int = 4
        embed_layers: int = 2
        stem_layers: int = 2
        levels: int = 8                # pyramid levels: strides 1, 2, ..., 2**(levels-1)
        window: int = 9                # local attention window (<= 1: global)
        regression_range: tuple = ((0, 4), (2, 8), (4, 16), (8, 32), (16, 64), (32, 128), (64, 256),
                                   (128, 10000))
        head_layers: int = 3
        head_kernel: int = 3
        dropout: float = 0.1
        abs_pe: bool = True
        cls_prior: float = 0.01
        center_radius: float = 1.5
        max_seq_len: int = 1024        # training windows: longer clips are cropped to this many features

    def __init__(self, input_dim: int, num_classes: int, options: "ActionFormerHead.Options | None" = None):
        super().__init__()
        o = options or self.Options()
        if len(o.regression_range) != o.levels:
            raise ValueError(f"regression_range has {len(o.regression_range)} entries for {o.levels} levels; "
                             "give one [min, max] per level")
        if o.dim % o.num_heads:
            raise ValueError(f"dim={o.dim} must be a multiple of num_heads={o.num_heads}")
        if o.max_seq_len % 2 ** (o.levels - 1):
            raise ValueError(f"max_seq_len={o.max_seq_len} must be a multiple of 2**(levels-1)={2 ** (o.levels - 1)}")
        self.options, self.input_dim, self.num_classes = o, int(input_dim), int(num_classes)
        self.embed = nn.ModuleList(nn.Conv1d(input_dim if i == 0 else o.dim, o.dim, 3, padding=1)
                                   for i in range(o.embed_layers))
        self.embed_norms = nn.ModuleList(_ChannelNorm(o.dim) for _ in range(o.embed_layers))
        self.stem = nn.ModuleList(_Block(o.dim, o.num_heads, o.window, o.dropout, False) for _ in range(o.stem_layers))
        self.branch = nn.ModuleList(_Block(o.dim, o.num_heads, o.window, o.dropout, True)
                                    for _ in range(o.levels - 1))
        self.level_norms = nn.ModuleList(nn.LayerNorm(o.dim) for _ in range(o.levels))
        self.cls_head = _SharedHead(o.dim, num_classes, o.head_layers, o.head_kernel)
        self.reg_head = _SharedHead(o.dim, 2, o.head_layers, o.head_kernel)
        self.scales = nn.Parameter(torch.ones(o.levels))
        nn.init.constant_(self.cls_head.out.bias, -math.log((1 - o.cls_prior) / o.cls_prior))

    @property
    def divisor(self) -> int:
        """Padded lengths are multiples of this (the coarsest stride)."""
        return 2 ** (self.options.levels - 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if x.shape[1] % self.divisor:
            raise ValueError(f"sequence length {x.shape[1]} is not a multiple of {self.divisor}; pad it")
        mask = mask.bool()
        keep = mask[:, None, :].to(x.dtype)
        h = x.transpose(1, 2)
        for conv, norm in zip(self.embed, self.embed_norms):
            h = F.relu(norm(conv(h))) * keep
        h = h.transpose(1, 2)
        if self.options.abs_pe:
            h = (h + _sinusoid(h.shape[1], h.shape[2]).to(h)[None]) * mask[:, :, None].to(h.dtype)
        for block in self.stem:
            h, mask = block(h, mask)
        feats = [(h, mask)]
        for block in self.branch:
            h, mask = block(h, mask)
            feats.append((h, mask))
        out = []
        for level, ((f, m), norm) in enumerate(zip(feats, self.level_norms)):
            k = m[:, None, :].to(f.dtype)
            f = norm(f).transpose(1, 2) * k
            logits = self.cls_head(f, k).transpose(1, 2)
            dist = F.relu(self.scales[level] * self.reg_head(f, k)).transpose(1, 2)
            out.append((logits, dist, m))
        return out

    def points(self, lengths: list[int], device) -> torch.Tensor:
        """``[sum T_l, 4]``: grid position, regression range low / high, stride of every point."""
        rows = []
        for level, (t, (lo, hi)) in enumerate(zip(lengths, self.options.regression_range)):
            s = 2 ** level
            pos = torch.arange(t, device=device, dtype=torch.float32) * s
            rows.append(torch.stack([pos, torch.full_like(pos, float(lo)), torch.full_like(pos, float(hi)),
                                     torch.full_like(pos, float(s))], dim=1))
        return torch.cat(rows)


@torch.no_grad()
def assign_targets(points: torch.Tensor, segments: torch.Tensor, labels: torch.Tensor, num_classes: int,
                   radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Class targets ``[P, C]`` and distance targets ``[P, 2]`` (stride units) of every point for
    one clip's moments ``segments [N, 2]`` (grid units) with ``labels [N]``."""
    p = points.shape[0]
    if segments.numel() == 0:
        return points.new_zeros(p, num_classes), points.new_zeros(p, 2)
    pos, lo, hi, stride = points[:, 0:1], points[:, 1:2], points[:, 2:3], points[:, 3:4]
    left, right = pos - segments[None, :, 0], segments[None, :, 1] - pos           # [P, N]
    centre = 0.5 * (segments[None, :, 0] + segments[None, :, 1])
    inner_left = torch.maximum(centre - radius * stride, segments[None, :, 0])
    inner_right = torch.minimum(centre + radius * stride, segments[None, :, 1])
    inside = torch.minimum(pos - inner_left, inner_right - pos) > 0
    reach = torch.maximum(left, right)
    ok = inside & (reach >= lo) & (reach <= hi)
    lengths = (segments[:, 1] - segments[:, 0])[None].expand(p, -1).masked_fill(~ok, float("inf"))
    best_len, best = lengths.min(dim=1)
    ties = (lengths <= best_len[:, None] + 1e-3) & torch.isfinite(lengths)
    cls = (ties.to(points.dtype) @ F.one_hot(labels, num_classes).to(points.dtype)).clamp(max=1.0)
    reg = torch.stack([left[torch.arange(p), best], right[torch.arange(p), best]], dim=1) / stride
    return cls, reg


def _focal(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    return ((alpha * targets + (1 - alpha) * (1 - targets)) * ce * (1 - p_t) ** gamma).sum()


def _diou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distance-IoU loss of ``[N, 2]`` (left, right) distances from the same points."""
    lp, rp, lg, rg = pred[:, 0], pred[:, 1], target[:, 0], target[:, 1]
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = lp + rp + lg + rg - inter
    iou = inter / union.clamp(min=1e-8)
    enclosing = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    centre_gap = 0.5 * ((rp - lp) - (rg - lg))
    return (1 - iou + (centre_gap / enclosing.clamp(min=1e-8)) ** 2).sum()


def detection_losses(outputs, cls_targets: torch.Tensor, reg_targets: torch.Tensor, normalizer: float
                     ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(classification loss, regression loss, positives)`` of a batch; ``cls_targets [B, P, C]``
    and ``reg_targets [B, P, 2]`` over the concatenated levels."""
    logits = torch.cat([o[0] for o in outputs], dim=1)
    dist = torch.cat([o[1] for o in outputs], dim=1)
    valid = torch.cat([o[2] for o in outputs], dim=1)
    positive = valid & (cls_targets.sum(-1) > 0)
    n_pos = int(positive.sum())
    cls_loss = _focal(logits[valid], cls_targets[valid]) / normalizer
    reg_loss = _diou(dist[positive], reg_targets[positive]) / normalizer if n_pos else dist.sum() * 0.0
    return cls_loss, reg_loss, n_pos


def segment_iou_1d(seg: np.ndarray, others: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(seg[1], others[:, 1]) - np.maximum(seg[0], others[:, 0]), 0, None)
    union = (seg[1] - seg[0]) + (others[:, 1] - others[:, 0]) - inter
    return inter / np.maximum(union, 1e-8)


def soft_nms_1d(segments: np.ndarray, scores: np.ndarray, sigma: float, min_score: float, max_keep: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS: repeatedly keep the best segment and scale every other score by
    ``exp(-iou^2 / sigma)``; stops below ``min_score`` or at ``max_keep`` segments."""
    segments, scores = segments.copy(), scores.astype(np.float64).copy()
    kept_segs, kept_scores = [], []
    while len(scores) and len(kept_scores) < max_keep:
        i = int(np.argmax(scores))
        if scores[i] < min_score:
            break
        kept_segs.append(segments[i])
        kept_scores.append(scores[i])
        seg = segments[i]
        segments, scores = np.delete(segments, i, axis=0), np.delete(scores, i)
        scores *= np.exp(-segment_iou_1d(seg, segments) ** 2 / sigma)
    return np.asarray(kept_segs, dtype=np.float64).reshape(-1, 2), np.asarray(kept_scores, dtype=np.float64)


@torch.no_grad()
def decode(outputs, index: int, *, pre_nms_thresh: float, pre_nms_topk: int, min_duration: float,
           nms_sigma: float, min_score: float, max_segments: int) -> list[tuple[int, float, float, float]]:
    """``(class, start, end, score)`` detections (grid units) of sample ``index``, best first."""
    segs, scores, classes = [], [], []
    for level, (logits, dist, mask) in enumerate(outputs):
        stride = 2 ** level
        prob = (torch.sigmoid(logits[index]) * mask[index, :, None]).flatten()
        keep = torch.nonzero(prob > pre_nms_thresh).squeeze(1)
        if keep.numel() == 0:
            continue
        top = prob[keep].argsort(descending=True)[:pre_nms_topk]
        flat = keep[top]
        c = logits.shape[-1]
        pt, cls = flat // c, flat % c
        d = dist[index, pt]
        left, right = pt * stride - d[:, 0] * stride, pt * stride + d[:, 1] * stride
        ok = (right - left) > min_duration
        segs.append(torch.stack([left, right], 1)[ok].float().cpu().numpy())
        scores.append(prob[flat][ok].float().cpu().numpy())
        classes.append(cls[ok].cpu().numpy())
    if not segs:
        return []
    segs, scores, classes = np.concatenate(segs), np.concatenate(scores), np.concatenate(classes)
    out = []
    for c in np.unique(classes):
        sel = classes == c
        kept, kept_scores = soft_nms_1d(segs[sel], scores[sel], nms_sigma, min_score, max_segments)
        out += [(int(c), float(s), float(e), float(sc)) for (s, e), sc in zip(kept, kept_scores)]
    out.sort(key=lambda r: -r[3])
    return out[:max_segments]
