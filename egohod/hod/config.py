"""Typed configs of the HOD pipeline (Hydra structured configs) and their composition.

YAML lives in ``configs/hod/`` (``run.yaml``, ``detector/*.yaml``, ``narrator/*.yaml``,
``style_train.yaml``, ``style_apply.yaml``, ``prompts/*.txt``); every YAML extends one of the
schemas below, so a misspelt key is an error naming the key. Overrides use Hydra syntax::

    egohod hod run clips=hod.csv videos=/data/ego4d_chunked out=runs/hod detector=100doh \\
        detector.checkpoint=faster_rcnn_1_8_132028.pth narrator=openai narrator.model=qwen shard=3 num_shards=16
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from ..config import transport, transport_fields

# Settings marked with egohod.config.transport() only change how the work is carried out
# (transport, batching, caching, progress), never a record: they may change between runs of one
# output folder. Detector and narrator settings are the ``Options`` dataclasses of the components
# (egohod/hod/detectors/*.py, egohod/hod/narrators/*.py); their schemas are generated from those.


# ----------------------------------------------------------------------------- run
@dataclass
class SamplingConfig:
    num_frames: int = 4  # T (called frames_per_clip before; the old name is still read)
    temporal_factor: int = 4  # lambda: lambda x T frames are sampled per clip
    resize_short: Optional[int] = None
    end_tolerance: float = 1.0  # seconds a clip may overrun the video end (clamped); more fails


@dataclass
class DynamicsSettings:
    hand_threshold: float = 0.5
    object_threshold: float = 0.5
    track_iou: float = 0.3
    track_distance: float = 1.5
    still_extent: float = 0.03
    scale_change: float = 1.3


@dataclass
class ValidationSettings:
    min_chars: int = 8
    max_chars: int = 400
    max_words: int = 80
    max_narrations: int = 5


@dataclass
class RayConfig:
    address: Optional[str] = None  # None: start a local Ray; "auto": join a running cluster
    num_cpus: Optional[int] = None
    concurrency: int = 2  # actors running the per-batch function
    num_gpus_per_actor: float = 0.0


@dataclass
class RunConfig:
    clips: str = MISSING  # HOD CSV or Ego4D narration JSON
    clips_format: str = "auto"  # auto | hod_csv | ego4d
    ego4d_window: str = "egovlp"  # "egovlp" or seconds
    videos: Optional[str] = None  # video root (chunked {root}/{id}/{chunk:04d}.mp4 or {root}/{id}.mp4)
    layout: str = "auto"  # auto | chunked | file
    chunk_seconds: float = 15.0
    ext: str = "mp4"
    limit: int = transport(0)  # first N clips only (0 = all)
    out: str = transport(MISSING)
    shard: Optional[int] = transport(None)  # default: $SLURM_ARRAY_TASK_ID, else 0
    num_shards: Optional[int] = transport(None)  # default: $SLURM_ARRAY_TASK_COUNT, else 1
    batch_size: int = transport(8)  # clips per pipeline step
    flush_every: int = transport(32)  # clips per atomically written part file
    executor: str = transport("local")  # local | ray
    progress: bool = transport(True)
    retry: str = transport("none")  # none | failed: re-run the failed clips of this output (successful ones are kept)
    max_transport_failures: int = transport(8)  # consecutive clips the narrator could not reach -> stop the shard
    keep_detections: bool = True  # per-frame detections in the JSONL (dynamics are always kept)
    text_includes_original: bool = False  # also put the original narration into the text list
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    dynamics: DynamicsSettings = field(default_factory=DynamicsSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    ray: RayConfig = transport(factory=RayConfig)
    detector: Any = MISSING
    narrator: Any = MISSING


@dataclass
class RenarrateConfig:
    out: str = MISSING  # a finished (or partly finished) `egohod hod run` output folder, rewritten in place
    batch_size: int = transport(8)
    progress: bool = transport(True)
    max_transport_failures: int = transport(8)
    narrator: Any = MISSING  # validation settings stay those of the output


@dataclass
class MergeConfig:
    out: str = MISSING
    allow_incomplete: bool = False


@dataclass
class StyleTrainConfig:
    labels: str = MISSING  # CSV: video_id,start_second,end_second,label  (label 1 = egocentric)
    features: Optional[str] = None  # .npz with keys + features; or compute with `encoder`
    encoder: Optional[str] = None
    checkpoint: Optional[str] = None
    videos: Optional[str] = None
    layout: str = "auto"
    chunk_seconds: float = 15.0
    num_frames: Optional[int] = None
    out: str = MISSING  # classifier checkpoint path (.pt)
    hidden: int = 256
    dropout: float = 0.1
    epochs: int = 50
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    holdout: float = 0.2
    seed: int = 0
    device: str = "cpu"


@dataclass
class StyleApplyConfig:
    model: str = MISSING  # classifier checkpoint from style-train
    clips: str = MISSING  # HOD CSV (or any CSV with video_id,start_second,end_second)
    features: Optional[str] = None
    encoder: Optional[str] = None
    checkpoint: Optional[str] = None
    videos: Optional[str] = None
    layout: str = "auto"
    chunk_seconds: float = 15.0
    num_frames: Optional[int] = None
    threshold: Optional[float] = None  # default: the threshold stored with the model
    trust_pickle: bool = False  # load `model` without egohod's safe-loading allowlist (trusted files only)
    out: str = MISSING  # folder: scores.csv + kept.csv
    device: str = "cpu"


@dataclass
class FeaturesConfig:
    clips: str = MISSING
    encoder: str = MISSING
    checkpoint: Optional[str] = None
    videos: str = MISSING
    layout: str = "auto"
    chunk_seconds: float = 15.0
    num_frames: Optional[int] = None
    batch_size: int = 8
    out: str = MISSING  # .npz
    device: str = "cpu"


TOP_SCHEMAS = {"run": RunConfig, "renarrate": RenarrateConfig, "merge": MergeConfig, "style_train": StyleTrainConfig,
               "style_apply": StyleApplyConfig, "features": FeaturesConfig}


def config_dir() -> Path:
    """``configs/hod`` of the packaged configs (:func:`egohod.config.config_root`)."""
    from ..config import config_root

    return config_root() / "hod"


def component_schemas(group: str) -> dict[str, type]:
    """``{name: schema}`` of every registered ``detector`` or ``narrator``, generated from the
    component's ``Options`` (egohod.config.options_schema): the defaults live there alone."""
    from .detectors.base import DETECTORS
    from .narrators.base import NARRATORS

    return {"detector": DETECTORS, "narrator": NARRATORS}[group].schemas()


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (the YAML's defaults lists name them: ``skin_schema``)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, node in TOP_SCHEMAS.items():
        cs.store(name=f"{name}_schema", node=node)
    for group in ("detector", "narrator"):
        for name, node in component_schemas(group).items():
            cs.store(group=group, name=f"{name}_schema", node=node)


# Settings that were renamed: old dotted key -> new. Accepted (with a warning) on the command line
# and read from the config.yaml recorded in output folders written before the rename.
RENAMED = {"sampling.frames_per_clip": "sampling.num_frames"}


def upgrade_recorded(cfg: dict) -> dict:
    """A run config recorded in an output folder (a plain dict), with renamed keys under their new names."""
    from .. import config

    return config.upgrade_recorded(cfg, RENAMED)


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/hod/<config_name>.yaml`` with Hydra ``overrides`` (``key=value``); raises
    :class:`egohod.config.ConfigError` naming what to change."""
    from .. import config

    register_configs()
    command = f"egohod hod {config_name.replace('_', '-')}"
    overrides = config.rename_arguments(overrides, RENAMED, command)
    cfg = config.compose("hod", config_name, overrides, command=command, check_missing=False)
    for group in ("detector", "narrator"):
        if group in cfg and OmegaConf.is_dict(cfg[group]):
            cfg[group] = validate_component(group, cfg[group])
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise config.ConfigError(f"missing required setting(s) {missing} for `{command}`; pass them as key=value")
    return cfg


def validate_component(group: str, node: DictConfig) -> DictConfig:
    """Re-check a detector/narrator node against its schema (catches keys added with ``+``)."""
    from ..config import ConfigError

    name = node.get("name")
    schemas = component_schemas(group)
    if name not in schemas:
        raise ConfigError(f"{group}.name={name!r} is not one of {sorted(schemas)}")
    schema = OmegaConf.structured(schemas[name])
    extra = sorted(set(node.keys()) - set(schema.keys()))
    if extra:
        raise ConfigError(f"unknown {group} setting(s) {extra} for {group}={name}; known: {sorted(schema.keys())}")
    return OmegaConf.merge(schema, node)


def transport_keys(cfg: dict) -> set[str]:
    """Dotted keys of ``cfg`` (a run config as a plain dict) that are transport-only: changing them
    between runs of one output changes no record (fields marked with :func:`egohod.config.transport`)."""
    keys = set(transport_fields(RunConfig))
    for group in ("detector", "narrator"):
        node = cfg.get(group)
        schemas = component_schemas(group)
        if isinstance(node, dict) and node.get("name") in schemas:
            keys |= {f"{group}.{k}" for k in transport_fields(schemas[node["name"]])}
    return keys


def component_kwargs(node: DictConfig) -> tuple[str, dict]:
    """(name, constructor kwargs) of a detector/narrator config node."""
    d = OmegaConf.to_container(node, resolve=True)
    assert isinstance(d, dict)
    return str(d.pop("name")), d
