"""Fine-tuning losses: the EK-100 MIR max-margin ranking loss, label-smoothed (soft-target)
cross-entropy, and mixup / cutmix of a video batch.

**Max-margin ranking (MIR).** The form LaViLa (``lavila/models/loss.py``,
``MaxMarginRankingLoss(margin=0.2, fix_norm=True)``, used by ``main_finetune_retrieval.py`` and
by AVION) uses, written here from its definition: with ``S[i, j] = cos(text_i, video_j)`` over
the (gathered) batch, where text ``i`` is a caption sampled among the positives of clip ``i``
(relevancy above a threshold, see :mod:`pretrain.finetune.data`),

    loss = mean over i != j of  relu(m_i - (S[i, i] - S[i, j]))  and  relu(m_i - (S[i, i] - S[j, i]))

i.e. both directions, the diagonal left out (``fix_norm``), each hinge counted once in one mean
over the ``2 n (n - 1)`` terms. ``m_i = margin`` (LaViLa's default), or with
``weight`` (LaViLa's ``AdaptiveMaxMarginRankingLoss``) ``m_i = margin * weight_i`` where
``weight_i`` is the relevancy of clip ``i``'s sampled caption. Other in-batch pairs that happen
to be relevant count as negatives, as in LaViLa.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pretrain.loss import gather_with_local_grad

__all__ = ["max_margin_ranking_loss", "soft_cross_entropy", "mix_batch", "mixed_targets"]


def max_margin_ranking_loss(video: torch.Tensor, text: torch.Tensor, margin: float = 0.2,
                            weight: torch.Tensor | None = None) -> torch.Tensor:
    """The loss above for ``[B, E]`` video / text features of a local batch (gathered over ranks;
    only the local rows keep gradients, as :func:`pretrain.loss.clip_loss`). Features are
    L2-normalised here. ``weight``: ``[B]`` relevancies for the adaptive margin, or None."""
    if video.shape != text.shape or video.dim() != 2:
        raise ValueError(f"video and text features must both be [B, E]; got {tuple(video.shape)} and {tuple(text.shape)}")
    v = gather_with_local_grad(F.normalize(video.float(), dim=-1))
    t = gather_with_local_grad(F.normalize(text.float(), dim=-1))
    s = t @ v.t()  # [n, n]: rows texts, columns videos
    n = s.shape[0]
    if n < 2:
        raise ValueError("the max-margin ranking loss needs at least 2 pairs in the (global) batch")
    m = torch.full((n,), float(margin), device=s.device)
    if weight is not None:
        m = m * gather_with_local_grad(weight.to(s.device).float().reshape(-1, 1)).reshape(-1)
    pos = s.diagonal()[:, None]
    off = 1.0 - torch.eye(n, device=s.device)  # the diagonal left out (a mask, not indexing: shape-static)
    row = F.relu(m[:, None] - (pos - s))  # text i against video j
    col = F.relu(m[:, None] - (pos - s.t()))  # video i against text j
    return ((row + col) * off).sum() / (2 * n * (n - 1))


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against ``target``: class indices ``[B]`` or probabilities ``[B, C]`` (mixup),
    with label smoothing ``smoothing`` (the target mixed with the uniform distribution)."""
    c = logits.shape[-1]
    if target.dim() == 1:
        target = F.one_hot(target.long(), c).float()
    target = target * (1 - smoothing) + smoothing / c
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def mix_batch(video: torch.Tensor, mixup: float, cutmix: float, generator: torch.Generator | None = None):
    """``(mixed video, lam, perm)``: mixup (``lam * x + (1 - lam) * x[perm]``) or cutmix (a box of
    ``x[perm]`` pasted into every frame; ``lam`` corrected to the kept area). ``perm`` is the batch
    flipped (timm's choice). Neither enabled: the batch unchanged, ``lam = 1``."""
    modes = [k for k, a in (("mixup", mixup), ("cutmix", cutmix)) if a > 0]
    perm = torch.arange(video.shape[0] - 1, -1, -1, device=video.device)
    if not modes:
        return video, 1.0, perm
    mode = modes[int(torch.randint(len(modes), (1,), generator=generator))]
    alpha = mixup if mode == "mixup" else cutmix
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    if mode == "mixup":
        return lam * video + (1 - lam) * video[perm], lam, perm
    h, w = video.shape[-2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=generator)), int(torch.randint(w, (1,), generator=generator))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = video.clone()
    out[..., y0:y1, x0:x1] = video[perm][..., y0:y1, x0:x1]
    return out, 1 - (y1 - y0) * (x1 - x0) / (h * w), perm


def mixed_targets(labels: torch.Tensor, num_classes: int, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """Soft targets of a mixed batch: ``lam * onehot(y) + (1 - lam) * onehot(y[perm])``."""
    one = F.one_hot(labels.long(), num_classes).float()
    return lam * one + (1 - lam) * one[perm]
