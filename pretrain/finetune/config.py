"""Typed configuration of a fine-tuning run (Hydra structured config; YAML in ``configs/finetune/``).

``train`` and ``log`` are pretraining's own dataclasses (same run-folder, checkpoint, resume and
logging settings); ``data``, ``model``, ``optim``, ``loss`` and ``eval`` are fine-tuning's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore

from pretrain.config import LogConfig, TrainConfig

TASKS = ("ek100-mir", "ek100-cls", "egtea")


@dataclass
class FtDataConfig:
    root: str = "???"  # the benchmark's annotation folder (data=DIR)
    videos: str = "videos"  # video folder, absolute or relative to root
    split: int = 1  # EGTEA split (train_split<k>.txt / test_split<k>.txt)
    num_frames: int = 16  # frames per clip, segment-based sampling (random frame per segment in training)
    resize_short: int = 320  # training: short side before RandomResizedCrop
    scale_min: float = 0.5  # RandomResizedCrop scale (scale_min, 1.0)
    flip: bool = True
    batch_size: int = 16  # per process
    num_workers: int = 8
    pin_memory: bool = True
    relevancy_threshold: float = 0.1  # MIR: captions with relevancy above this are positives of a clip


@dataclass
class FtModelConfig:
    name: str = "egovideo_b"  # encoder=
    checkpoint: Optional[str] = None  # checkpoint= (official, pretrain/ or finetune checkpoint)
    grad_checkpointing: bool = False
    head_dropout: float = 0.5  # classification: dropout before the linear head(s)


@dataclass
class FtOptimConfig:
    lr: float = 3e-5
    weight_decay: float = 0.05
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: str = "cosine"  # constant | cosine
    warmup_epochs: float = 1.0  # linear warm-up (converted to steps)
    warmup_steps: int = 0  # set from warmup_epochs at start (kept for pretrain.optim.lr_at)
    min_lr: float = 1e-6
    grad_clip: float = 0.0
    accum_steps: int = 1
    layer_decay: float = 1.0  # layer-wise lr decay (BEiT): block i of L gets lr * decay^(L + 1 - i); 1.0 = off


@dataclass
class FtLossConfig:
    margin: float = 0.2  # MIR max-margin ranking margin
    adaptive_margin: bool = False  # MIR: margin scaled by the positive caption's relevancy (LaViLa's Adaptive form)
    label_smoothing: float = 0.1  # classification
    mixup: float = 0.0  # Beta(a, a) mixup; 0 = off
    cutmix: float = 0.0  # Beta(a, a) cutmix (same box on every frame); 0 = off; with both, each batch picks one


@dataclass
class FtEvalConfig:
    every_epochs: int = 1  # 0: no evaluation
    batch_size: int = 16
    num_clips: int = 1  # test views: clips spread over the segment x crops along its long side, logits averaged
    num_crops: int = 1  # 1 (centre) or 3 (left/top, centre, right/bottom)
    limit: Optional[int] = None  # first N evaluation clips only (quick checks)
    metric: str = ""  # metric that picks the best checkpoint ("" = the task's default)


@dataclass
class FinetuneConfig:
    task: str = "???"
    data: FtDataConfig = field(default_factory=FtDataConfig)
    model: FtModelConfig = field(default_factory=FtModelConfig)
    optim: FtOptimConfig = field(default_factory=FtOptimConfig)
    loss: FtLossConfig = field(default_factory=FtLossConfig)
    eval: FtEvalConfig = field(default_factory=FtEvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="finetune_schema", node=FinetuneConfig)


def validate(cfg: FinetuneConfig) -> None:
    """Check values and combinations; raise ``ValueError`` naming the key to change."""
    d, o, t, e, lo = cfg.data, cfg.optim, cfg.train, cfg.eval, cfg.loss
    if cfg.task not in TASKS:
        raise ValueError(f"task={cfg.task!r}: choose one of {list(TASKS)}")
    if d.root in ("???", ""):
        raise ValueError("set data=DIR (data.root: the benchmark's annotation folder)")
    if cfg.task == "egtea" and d.split not in (1, 2, 3):
        raise ValueError(f"data.split={d.split}: EGTEA has splits 1, 2, 3")
    if o.schedule not in ("constant", "cosine"):
        raise ValueError(f"optim.schedule={o.schedule!r}: choose constant or cosine")
    if t.strategy != "ddp":
        raise ValueError("fine-tuning runs under DDP (train.strategy=ddp); FSDP is pretraining only")
    if t.device not in ("auto", "cpu", "cuda") or t.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError("train.device: auto|cpu|cuda; train.precision: auto|fp32|bf16|fp16")
    for key, val in (("data.batch_size", d.batch_size), ("data.num_frames", d.num_frames),
                     ("optim.accum_steps", o.accum_steps), ("eval.batch_size", e.batch_size),
                     ("eval.num_clips", e.num_clips), ("train.save_every_steps", t.save_every_steps),
                     ("train.log_every_steps", t.log_every_steps)):
        if val <= 0:
            raise ValueError(f"{key} must be positive, got {val}")
    if e.num_crops not in (1, 3):
        raise ValueError(f"eval.num_crops={e.num_crops}: 1 (centre) or 3 (LaViLa's three crops)")
    if not 0 < o.layer_decay <= 1:
        raise ValueError(f"optim.layer_decay={o.layer_decay} must be in (0, 1] (1 = off)")
    if o.lr <= 0 or o.weight_decay < 0 or len(o.betas) != 2:
        raise ValueError(f"optim: need lr > 0, weight_decay >= 0 and two betas, got {o.lr}, {o.weight_decay}, {o.betas}")
    if not 0 <= lo.label_smoothing < 1 or lo.mixup < 0 or lo.cutmix < 0:
        raise ValueError("loss.label_smoothing must be in [0, 1); loss.mixup / loss.cutmix >= 0")
    if cfg.task == "ek100-mir" and (lo.mixup or lo.cutmix):
        raise ValueError("loss.mixup / loss.cutmix apply to classification, not ek100-mir")
    if t.resume and t.overwrite:
        raise ValueError("train.resume=true continues the run and train.overwrite=true deletes it: choose one")
    if t.epochs <= 0 and t.max_steps <= 0:
        raise ValueError("set train.epochs > 0 or train.max_steps > 0")
