"""Typed configuration of ``robot/train_bc.py`` and ``robot/eval_bc.py`` (Hydra structured configs).

The YAML in ``configs/robot/``, ``configs/encoder/``, ``configs/env/`` and ``configs/policy/`` is
merged onto these dataclasses, so a misspelt key is an error naming the key. Policy options
depend on the head: ``configs/policy/<name>.yaml`` extends ``<name>_schema``, generated from the
head's ``Options`` dataclass (``policies.policy_schemas``, stored by :func:`register_configs`),
which alone holds their defaults; the policy registry (``policies.policy_options``) validates
them again before anything runs. :func:`validate` checks values and says what to change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from egohod.config import ConfigError, config_root  # noqa: F401 - ConfigError: the one class, re-exported for robot/

# the YAML of every robot command: the packaged configs (configs/ of the source tree)
CONFIG_ROOT = config_root()


# Seeds of the held-out re-evaluation of the best checkpoint ([HELDOUT_SEED, HELDOUT_SEED + 100_000)):
# disjoint from demo seeds ([0, 100_000)), evaluation seeds ([100_000, 200_000)), corpus seeds
# ([1_000_000, 1_100_000), robot/corpus.py) and evaluation padding (10_000_000 above a last seed).
HELDOUT_SEED = 5_000_000
SEED_SCHEDULES = ("fixed", "per_epoch")
SUCCESS_RULES = ("task", "strict")

# settings renamed since runs were recorded: old name -> new. The robot commands still accept
# the old name on the command line (egohod.config.rename_arguments, with a FutureWarning).
RENAMED = {"out_dir": "out", "encoder.frames": "encoder.num_frames"}


@dataclass
class EncoderConfig:
    name: str = MISSING               # a registered encoder (egohod.list_encoders()) or "state"
    checkpoint: Optional[str] = None  # weights file; null = random weights (labelled RANDOM WEIGHTS)
    seed: Optional[int] = None        # seed of random weights (egohod.load_encoder(..., seed=)); null: the run's `seed`
    num_frames: int = 1               # frames per observation: 1 = the current one (repeated to the encoder's clip
                                      # length); k > 1 = the last k (encoder.frames= before: still accepted)
    object_state: str = "task"        # encoder=state only: "task" (task joint, end effector, site) or "all" 30 entries


@dataclass
class EnvConfig:
    name: str = "kitchen"             # environment family: envs.make(f"{name}/{task}")
    task: str = "microwave"
    camera: str = "left"
    image_size: int = 224
    horizon: int = 50                 # control steps per evaluation episode
    kitchen_noise: float = 0.1        # desk position randomisation U(-x, x)^3 (R3M protocol)
    joint_noise: float = 0.05         # initial joint noise
    success: str = "task"             # task: the task joint within its threshold; strict: also every other object joint where it started (R3M)


@dataclass
class DemosConfig:
    num: int = 25                     # demos used for training (the first `num` of the file)
    path: Optional[str] = None        # existing demo file; null = generate with the scripted experts (cached)
    seed: int = 0                     # seed of the generated demos
    action_noise: float = 0.1         # DART noise on the expert's executed actions (robot/make_demos.py)
    workers: int = 2                  # processes generating demos
    cache_dir: str = ".cache/egohod/demos"


@dataclass
class TrainConfig:
    steps: int = 20000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None
    log_every: int = 100
    cpu_threads: int = 1              # torch threads for the updates on CPU (0: leave as is); rollouts use all


@dataclass
class EvalConfig:
    every: int = 1000                 # evaluate every k training steps (and after the last step)
    episodes: int = 50
    num_envs: int = 2                 # parallel environment processes (0: one per CPU core)
    seed: int = 100000                # episode i of every evaluation uses seed `seed + i` (seed_schedule=fixed)
    seed_schedule: str = "fixed"      # fixed: the same seeds every evaluation; per_epoch: R3M's seed + run seed + epoch + i
    heldout_seed: int = HELDOUT_SEED  # best_heldout: the best checkpoint re-run on seeds heldout_seed + i
    heldout_episodes: int = 50        # episodes of the best_heldout evaluation (0: skip it)
    videos: int = 3                   # rollout mp4s of the first episodes after the final evaluation
    encode_batch: int = 64            # environments per encoder forward at rollout (all of them when fewer)
    precision: str = "fp32"           # encoder forward, cache fill and rollout alike: fp32 | bf16 (autocast; GPU)
    compile: bool = False             # torch.compile the encoder (GPU; the first forward compiles)


@dataclass
class CacheConfig:
    dir: str = ".cache/egohod/features"
    encode_batch: int = 32            # clips per encoder forward when filling the cache


@dataclass
class WandbConfig:
    mode: str = "offline"             # offline | online | disabled
    project: str = "egohod-bc"
    entity: Optional[str] = None


@dataclass
class TrainBCConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: Any = MISSING             # {name: <registered policy>, ...its Options}: configs/policy/<name>.yaml
    demos: DemosConfig = field(default_factory=DemosConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    seed: int = 0
    protocol: str = "egohod"          # set by the protocol group (configs/protocol/): egohod | r3m
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    out: str = MISSING                # the run folder (out_dir= before: still accepted, see RENAMED)
    resume: bool = True               # continue from out/checkpoints/last when it exists
    overwrite: bool = False           # resume=false on a folder holding a previous run: replace it (else refused)


@dataclass
class EvalBCConfig:
    checkpoint: str = MISSING         # a checkpoints/<step> dir, checkpoints/last, or its policy.pt
    encoder_checkpoint: Optional[str] = None  # weights file when the stored path moved (sha256 must match)
    eval: EvalConfig = field(default_factory=EvalConfig)
    device: str = "auto"
    out: Optional[str] = None         # default: <run dir>/eval/<step>
    trust_pickle: bool = False        # load the checkpoint without egohod's safe-loading allowlist (trusted files only)


def register_configs() -> None:
    """Store the robot schemas in Hydra's ConfigStore, and each registered policy head's schema
    as ``policy/<name>_schema`` (the one ``configs/policy/<name>.yaml`` extends)."""
    from hydra.core.config_store import ConfigStore

    from policies import policy_schemas

    cs = ConfigStore.instance()
    cs.store(group="robot", name="train_bc_schema", node=TrainBCConfig)
    cs.store(group="robot", name="eval_bc_schema", node=EvalBCConfig)
    for name, schema in policy_schemas().items():
        cs.store(group="policy", name=f"{name}_schema", node=schema)


def validate(cfg) -> None:
    """Check values of a composed TrainBCConfig before any work starts."""
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    need(cfg.encoder.num_frames >= 1, f"encoder.num_frames must be >= 1, got {cfg.encoder.num_frames}")
    need(cfg.encoder.object_state in ("task", "all"),
         f"encoder.object_state={cfg.encoder.object_state!r}: expected 'task' (the task's joint, end effector and "
         "site) or 'all' (every object joint too)")
    need(cfg.demos.num >= 1, f"demos.num must be >= 1, got {cfg.demos.num}")
    need(cfg.train.steps >= 1, f"train.steps must be >= 1, got {cfg.train.steps}")
    need(cfg.train.batch_size >= 1, f"train.batch_size must be >= 1, got {cfg.train.batch_size}")
    need(cfg.train.lr > 0, f"train.lr must be > 0, got {cfg.train.lr}")
    need(cfg.eval.every >= 1, f"eval.every must be >= 1, got {cfg.eval.every}")
    need(cfg.eval.episodes >= 1, f"eval.episodes must be >= 1, got {cfg.eval.episodes}")
    need(cfg.eval.num_envs >= 0, f"eval.num_envs must be >= 0 (0: one per CPU core), got {cfg.eval.num_envs}")
    need(cfg.eval.encode_batch >= 1, f"eval.encode_batch must be >= 1, got {cfg.eval.encode_batch}")
    need(cfg.eval.precision in ("fp32", "bf16"), f"eval.precision must be fp32 or bf16, got {cfg.eval.precision!r}")
    need(cfg.eval.videos >= 0, f"eval.videos must be >= 0, got {cfg.eval.videos}")
    need(cfg.env.horizon >= 1, f"env.horizon must be >= 1, got {cfg.env.horizon}")
    need(cfg.env.success in SUCCESS_RULES,
         f"env.success={cfg.env.success!r}: expected 'task' (the task joint within its threshold) or 'strict' "
         "(also every other object joint where it started, R3M's rule)")
    need(cfg.eval.seed_schedule in SEED_SCHEDULES,
         f"eval.seed_schedule={cfg.eval.seed_schedule!r}: expected 'fixed' (the same seeds every evaluation) or "
         "'per_epoch' (R3M's: seeds shift with the training epoch)")
    need(cfg.eval.heldout_episodes >= 0, f"eval.heldout_episodes must be >= 0, got {cfg.eval.heldout_episodes}")
    need(cfg.eval.heldout_seed >= HELDOUT_SEED,
         f"eval.heldout_seed={cfg.eval.heldout_seed} is below {HELDOUT_SEED}: it could meet demo, evaluation or "
         "corpus seeds (robot/config.py HELDOUT_SEED)")
    need(cfg.wandb.mode in ("offline", "online", "disabled"),
         f"wandb.mode must be offline, online or disabled, got {cfg.wandb.mode!r}")
    need(cfg.device == "auto" or cfg.device == "cpu" or str(cfg.device).startswith("cuda"),
         f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    if not isinstance(cfg.policy, dict) and not hasattr(cfg.policy, "keys"):
        raise ConfigError("policy must be a mapping with a 'name' (choose one of configs/policy/*.yaml)")
    need("name" in cfg.policy, "policy needs a 'name' key (e.g. policy=mlp)")
