"""One optimizer step of contrastive video-text training (with gradient accumulation).

With ``accum_steps`` micro-batches the contrastive loss is the mean of the micro-batch losses:
negatives come from the micro-batch (gathered over ranks), not from the whole accumulated
batch. Gradients are synchronised across ranks only on the last micro-batch.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Sequence

import torch

from .loss import clip_loss

__all__ = ["StepResult", "batch_to_device", "forward_loss", "train_step"]


@dataclass
class StepResult:
    loss: float  # global-batch InfoNCE (identical on all ranks), mean over micro-batches
    acc_v2t: float
    acc_t2v: float
    grad_norm: float  # global norm before clipping (inf/nan if the fp16 scaler skipped the step)
    skipped: bool = False  # fp16: the scaler found inf/nan gradients and skipped the update
    metrics: dict = field(default_factory=dict)  # a custom loss_fn's float metrics, mean over micro-batches


def batch_to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def forward_loss(model, batch: dict, autocast: Callable[[], ContextManager]):
    """Model forward (dual path when the batch has ``video_slow``) and the gathered InfoNCE."""
    with autocast():
        out = model(batch["video"], batch["tokens"], batch.get("video_slow"))
    return clip_loss(out["video"], out["text"], out["logit_scale"])


def train_step(
    model,
    micro_batches: Sequence[dict],
    optimizer: torch.optim.Optimizer,
    *,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    scaler: torch.amp.GradScaler | None = None,
    no_sync: Callable[[], ContextManager] = contextlib.nullcontext,
    grad_clip: float = 0.0,
    loss_fn: Callable | None = None,
) -> StepResult:
    """Forward/backward over ``micro_batches`` (already on the device), then one optimizer step.

    ``no_sync`` suspends the cross-rank gradient reduction (DDP ``no_sync`` / FSDP
    ``set_requires_gradient_sync(False)``) for all but the last micro-batch. ``loss_fn(model, batch,
    autocast)`` replaces the contrastive :func:`forward_loss` (fine-tuning): it returns a dict with
    ``loss`` (tensor with graph) and float metrics, averaged over micro-batches into ``metrics``.
    """
    loss_fn = forward_loss if loss_fn is None else loss_fn
    if not micro_batches:
        raise ValueError("train_step needs at least one micro-batch")
    optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    loss_sum = acc_v = acc_t = 0.0
    metrics: dict = {}
    for i, mb in enumerate(micro_batches):
        ctx = no_sync() if i < n - 1 else contextlib.nullcontext()
        with ctx:
            res = loss_fn(model, mb, autocast)
            loss = res["loss"] / n
            (scaler.scale(loss) if scaler is not None else loss).backward()
        loss_sum += float(res["loss"].detach())
        acc_v += res.get("acc_v2t", 0.0) / n
        acc_t += res.get("acc_t2v", 0.0) / n
        for k, v in res.items():
            if k not in ("loss", "acc_v2t", "acc_t2v") and isinstance(v, float):
                metrics[k] = metrics.get(k, 0.0) + v / n
    if scaler is not None:
        scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    max_norm = grad_clip if grad_clip > 0 else math.inf
    grad_norm = 0.0
    if params:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # DTensor under FSDP
    skipped = False
    if scaler is not None:
        scale_before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        skipped = scaler.get_scale() < scale_before
    else:
        optimizer.step()
    return StepResult(loss_sum / n, acc_v, acc_t, grad_norm, skipped, metrics)
