"""AdamW over the trainable parameters of a stage, and the learning-rate schedule.

The schedule is a pure function of the step (no scheduler object to save): resuming at step
``s`` sets exactly the learning rate the uninterrupted run had.
"""
from __future__ import annotations

import math

import torch

from .config import OptimConfig

__all__ = ["build_optimizer", "lr_at", "set_lr"]


def build_optimizer(model, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad (``EgoVideo.set_trainable(stage)`` chose
    them), with weight decay on matrices only: none on biases, norms and other 1-d parameters
    (``EgoVideo.param_groups``). Build it after DDP/FSDP wrapping (FSDP replaces parameters)."""
    groups = [g for g in model.param_groups(weight_decay=cfg.weight_decay) if g["params"]]
    if not groups:
        raise RuntimeError("no trainable parameters: check model.stage")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then constant or cosine decay to ``min_lr`` at ``total_steps``."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr; a group with ``lr_scale`` (layer-wise decay, fine-tuning) gets ``lr * lr_scale``."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
