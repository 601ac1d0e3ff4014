"""Typed configuration of EgoVideo pretraining (Hydra structured configs).

The YAML files in ``configs/pretrain/`` fill these dataclasses; an unknown key or a value of the
wrong type is an error before anything runs, and :func:`validate` checks the combinations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore

STAGES = ("contrastive", "cotrain", "adapter")


@dataclass
class DataConfig:
    csv: Optional[str] = None  # HOD CSV (video_id,start_second,end_second,text[,dataset,uid])
    ego4d_json: Optional[str] = None  # or Ego4D narration.json (EgoClip windows)
    video_root: str = "???"
    layout: str = "chunked"  # chunked: {root}/{video_id}/{chunk:04d}.mp4 ; file: {root}/{video_id}.mp4 ("plain": old name)
    chunk_seconds: float = 15.0
    ext: str = "mp4"
    num_frames: int = 4  # T of the trainable (fast) path
    slow_frames: int = 16  # lambda * T of the adapter (slow) path; 0 = no slow path
    resize_short: int = 320  # short side at decode time (and before RandomResizedCrop)
    flip: bool = True  # random horizontal flip in training; false when captions name left/right
    batch_size: int = 128  # per process
    num_workers: int = 8
    prefetch_factor: int = 2
    pin_memory: bool = True
    backend: str = "auto"  # auto (the PyAV random-access reader, decord as fallback) | pyav | decord
    max_retries: int = 10  # replacements tried for one bad sample
    max_bad_fraction: float = 0.01  # stop when more than this share of samples failed ...
    bad_min_attempts: int = 256  # ... once at least this many were attempted (per rank)
    holdout_fraction: float = 0.0  # videos held out of training for validation (0: none)


@dataclass
class ModelConfig:
    name: str = "egovideo_b"
    checkpoint: Optional[str] = None  # initial weights (official or egohod checkpoint)
    stage: str = "cotrain"  # contrastive | cotrain | adapter (see EgoVideo.stage_trainable)
    slow_grad: str = "frozen"  # frozen: adapters learn through later blocks | no_grad: upstream (adapters get no gradient)
    grad_checkpointing: bool = False
    compile: bool = False


@dataclass
class OptimConfig:
    lr: float = 4e-5
    weight_decay: float = 0.01
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    min_lr: float = 0.0
    grad_clip: float = 0.0  # max global grad norm; 0 disables
    accum_steps: int = 1  # micro-batches per optimizer step


@dataclass
class TrainConfig:
    out: str = "outputs/pretrain"  # the run folder (train.out_dir= before: still accepted, see RENAMED)
    epochs: int = 15
    max_steps: int = 0  # stop after this many optimizer steps (0: epochs decide)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    strategy: str = "ddp"  # ddp | fsdp
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16 (with GradScaler)
    save_every_steps: int = 1000
    save_at_end: bool = True
    resume: bool = False  # continue from the newest loadable checkpoint of out
    overwrite: bool = False  # start afresh in an out that holds checkpoints (deletes them and the logs)
    keep_last: int = 3  # checkpoints kept (the newest; the one `last` points to is never deleted); 0 keeps all
    orphan_timeout_s: float = 60.0  # torchrun agent died: stop after the step, exit hard after this long; 0: no watchdog
    log_every_steps: int = 10
    grad_checksum: bool = False  # write every rank's gradient checksum per step (checks DDP sync)


@dataclass
class LogConfig:
    progress: bool = True
    wandb: bool = True
    wandb_mode: str = "offline"
    wandb_project: str = "egohod-pretrain"
    run_name: Optional[str] = None


@dataclass
class ValConfig:
    every_epochs: int = 1  # 0 disables
    max_clips: int = 1024
    batch_size: int = 64
    ek100_mir_dir: Optional[str] = None  # EK-100 MIR annotation folder: zero-shot MIR each validation epoch
    ek100_mir_videos: str = "videos"  # EK-100 videos, absolute or relative to ek100_mir_dir
    ek100_mir_limit: Optional[int] = None  # first N test clips only (quick checks)


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    val: ValConfig = field(default_factory=ValConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="pretrain_schema", node=PretrainConfig)


# settings renamed since runs were recorded: old key -> new. Pretraining and fine-tuning still
# accept the old key on the command line, with a FutureWarning (:func:`rename_arguments`).
RENAMED = {"train.out_dir": "train.out"}


def rename_arguments(argv: list[str], command: str) -> list[str]:
    """``argv`` with the old keys of :data:`RENAMED` (``train.out_dir=X``, ``+train.out_dir=X``)
    replaced by their new names (:func:`egohod.config.rename_arguments`)."""
    from egohod.config import rename_arguments as rename

    return rename(argv, RENAMED, command)


def _choice(value, allowed, key):
    if value not in allowed:
        raise ValueError(f"{key}={value!r}: choose one of {list(allowed)}")


def validate(cfg: PretrainConfig) -> None:
    """Check value combinations; raise ``ValueError`` naming the key to change."""
    d, m, o, t = cfg.data, cfg.model, cfg.optim, cfg.train
    if (d.csv is None) == (d.ego4d_json is None):
        raise ValueError("set exactly one of data.csv (HOD CSV) or data.ego4d_json (Ego4D narrations)")
    if d.video_root in ("???", ""):
        raise ValueError("set data.video_root (the folder holding the videos)")
    _choice(d.layout, ("chunked", "file", "plain"), "data.layout")  # plain: the old name of file
    _choice(d.backend, ("auto", "decord", "pyav"), "data.backend")
    _choice(m.stage, STAGES, "model.stage")
    _choice(m.slow_grad, ("no_grad", "frozen"), "model.slow_grad")
    _choice(o.schedule, ("constant", "cosine"), "optim.schedule")
    _choice(t.device, ("auto", "cpu", "cuda"), "train.device")
    _choice(t.strategy, ("ddp", "fsdp"), "train.strategy")
    _choice(t.precision, ("auto", "fp32", "bf16", "fp16"), "train.precision")
    if m.stage in ("cotrain", "adapter") and d.slow_frames <= 0:
        raise ValueError(f"model.stage={m.stage} trains the adapter path: set data.slow_frames > 0 (e.g. 16)")
    if m.stage == "contrastive" and d.slow_frames > 0:
        raise ValueError("model.stage=contrastive does not use the slow path: set data.slow_frames=0")
    for key, val in (("data.batch_size", d.batch_size), ("data.num_frames", d.num_frames),
                     ("optim.accum_steps", o.accum_steps), ("train.save_every_steps", t.save_every_steps),
                     ("train.log_every_steps", t.log_every_steps), ("data.resize_short", d.resize_short)):
        if val <= 0:
            raise ValueError(f"{key} must be positive, got {val}")
    if t.resume and t.overwrite:
        raise ValueError("train.resume=true continues the run in train.out and train.overwrite=true deletes it: "
                         "choose one")
    if t.keep_last < 0 or t.orphan_timeout_s < 0:
        raise ValueError(f"train.keep_last and train.orphan_timeout_s must be >= 0 (0: keep all / no watchdog), "
                         f"got {t.keep_last}, {t.orphan_timeout_s}")
    if t.epochs <= 0 and t.max_steps <= 0:
        raise ValueError("set train.epochs > 0 or train.max_steps > 0")
    if o.lr <= 0 or o.weight_decay < 0 or len(o.betas) != 2:
        raise ValueError(f"optim: need lr > 0, weight_decay >= 0 and two betas, got {o.lr}, {o.weight_decay}, {o.betas}")
    if not 0 <= d.max_bad_fraction <= 1 or not 0 <= d.holdout_fraction < 1:
        raise ValueError("data.max_bad_fraction must be in [0, 1] and data.holdout_fraction in [0, 1)")
