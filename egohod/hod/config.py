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

# Field metadata of settings that only change how the work is carried out (transport, batching,
# caching, progress), never a record: they may change between runs of one output folder.
TRANSPORT = {"transport": True}


def transport(default: Any = None, factory: Any = None) -> Any:
    """A dataclass field marked as transport-only (see :data:`TRANSPORT`)."""
    if factory is not None:
        return field(default_factory=factory, metadata=TRANSPORT)
    return field(default=default, metadata=TRANSPORT)


# ----------------------------------------------------------------------------- detectors
@dataclass
class SkinDetectorConfig:
    name: str = "skin"
    work_size: int = 160
    min_area: float = 0.004
    max_hands: int = 2
    motion_threshold: float = 40.0
    saturation_threshold: float = 0.55
    contact_margin: float = 0.02
    max_objects: int = 5


@dataclass
class Doh100DetectorConfig:
    name: str = "100doh"
    checkpoint: Optional[str] = None
    device: str = "auto"
    batch_size: int = 16
    hand_threshold: float = 0.5
    object_threshold: float = 0.5
    scale: int = 600
    max_size: int = 1000
    post_nms_top_n: int = 300
    fp16: bool = False


@dataclass
class PrecomputedDetectorConfig:
    name: str = "precomputed"
    root: Optional[str] = None
    format: str = "ek100"
    fps: Optional[float] = None
    video_info: Optional[str] = None
    frame_width: int = 456
    frame_height: int = 256
    max_frame_gap: int = 2
    cache_videos: int = transport(4)
    trust_pickle: bool = transport(False)  # unpickle .pkl detections without egohod's allowlist (trusted files only)


# ----------------------------------------------------------------------------- narrators
@dataclass
class TemplateNarratorConfig:
    name: str = "template"
    pattern: str = "{tag}{details}"
    seed: int = 0  # picks the wording of each narration (deterministic per seed and clip)
    variants: int = 1  # narrations per original paraphrase (different wordings of the same dynamics)


@dataclass
class OpenAINarratorConfig:
    name: str = "openai"
    base_url: Optional[str] = transport(None)  # where the server runs; `model` names what answers
    model: Optional[str] = None
    api_key_env: str = transport("OPENAI_API_KEY")
    system_prompt: str = "system.txt"
    user_prompt: str = "user.txt"
    num_narrations: int = 1
    temperature: float = 0.7
    max_tokens: int = 256
    timeout_s: float = transport(60.0)
    max_retries: int = transport(3)  # per request, on transport errors and malformed/empty/invalid answers
    backoff_s: float = transport(1.0)
    max_backoff_s: float = transport(30.0)
    max_concurrency: int = transport(8)
    extra_body: dict = field(default_factory=dict)


@dataclass
class TransformersNarratorConfig:
    name: str = "transformers"
    model_dir: Optional[str] = None
    system_prompt: str = "system.txt"
    user_prompt: str = "user.txt"
    num_narrations: int = 1
    max_new_tokens: int = 96
    temperature: float = 0.0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    seed: int = 0
    max_retries: int = transport(2)  # sampled generation (temperature > 0): new draws for invalid answers


# ----------------------------------------------------------------------------- run
@dataclass
class SamplingConfig:
    frames_per_clip: int = 4  # T
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


# components that declare their settings as an ``Options`` dataclass: the schema is generated
# from it (egohod.config.options_schema adds only ``name``), so the defaults live there alone
from ..config import options_schema  # noqa: E402
from .detectors.mediapipe_hands import Options as _MediaPipeOptions  # noqa: E402
from .narrators.local_gguf import Options as _LocalNarratorOptions  # noqa: E402

MediaPipeDetectorConfig = options_schema("mediapipe", _MediaPipeOptions)
LocalNarratorConfig = options_schema("local", _LocalNarratorOptions)


DETECTOR_SCHEMAS = {"skin": SkinDetectorConfig, "100doh": Doh100DetectorConfig, "precomputed": PrecomputedDetectorConfig,
                    "mediapipe": MediaPipeDetectorConfig}
NARRATOR_SCHEMAS = {"template": TemplateNarratorConfig, "openai": OpenAINarratorConfig,
                    "transformers": TransformersNarratorConfig, "local": LocalNarratorConfig}
TOP_SCHEMAS = {"run": RunConfig, "renarrate": RenarrateConfig, "merge": MergeConfig, "style_train": StyleTrainConfig,
               "style_apply": StyleApplyConfig, "features": FeaturesConfig}

_REGISTERED = False


def config_dir() -> Path:
    """``configs/hod`` of the packaged configs (:func:`egohod.config.config_root`)."""
    from ..config import config_root

    return config_root() / "hod"


def register_configs() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, node in TOP_SCHEMAS.items():
        cs.store(name=f"{name}_schema", node=node)
    for name, node in DETECTOR_SCHEMAS.items():
        cs.store(group="detector", name=f"{name}_schema", node=node)
    for name, node in NARRATOR_SCHEMAS.items():
        cs.store(group="narrator", name=f"{name}_schema", node=node)
    _REGISTERED = True


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/hod/<config_name>.yaml`` with Hydra ``overrides`` (``key=value``); raises
    :class:`egohod.config.ConfigError` naming what to change."""
    from .. import config

    register_configs()
    command = f"egohod hod {config_name.replace('_', '-')}"
    cfg = config.compose("hod", config_name, overrides, command=command, check_missing=False)
    for group, schemas in (("detector", DETECTOR_SCHEMAS), ("narrator", NARRATOR_SCHEMAS)):
        if group in cfg and OmegaConf.is_dict(cfg[group]):
            cfg[group] = validate_component(group, cfg[group], schemas)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise config.ConfigError(f"missing required setting(s) {missing} for `{command}`; pass them as key=value")
    return cfg


def validate_component(group: str, node: DictConfig, schemas: dict) -> DictConfig:
    """Re-check a detector/narrator node against its schema (catches keys added with ``+``)."""
    name = node.get("name")
    from ..config import ConfigError

    if name not in schemas:
        raise ConfigError(f"{group}.name={name!r} is not one of {sorted(schemas)}")
    extra = sorted(set(node.keys()) - set(OmegaConf.structured(schemas[name]).keys()))
    if extra:
        raise ConfigError(f"unknown {group} setting(s) {extra} for {group}={name}; "
                         f"known: {sorted(OmegaConf.structured(schemas[name]).keys())}")
    return OmegaConf.merge(OmegaConf.structured(schemas[name]), node)


def _transport_fields(schema) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(schema) if f.metadata.get("transport")}


def transport_keys(cfg: dict) -> set[str]:
    """Dotted keys of ``cfg`` (a run config as a plain dict) that are transport-only: changing them
    between runs of one output changes no record (fields marked with :func:`transport`)."""
    keys = set()
    for name in _transport_fields(RunConfig):
        keys.add(name)
    for group, schemas in (("detector", DETECTOR_SCHEMAS), ("narrator", NARRATOR_SCHEMAS)):
        node = cfg.get(group)
        if isinstance(node, dict) and node.get("name") in schemas:
            keys |= {f"{group}.{k}" for k in _transport_fields(schemas[node["name"]])}
    return keys


def component_kwargs(node: DictConfig) -> tuple[str, dict]:
    """(name, constructor kwargs) of a detector/narrator config node."""
    d = OmegaConf.to_container(node, resolve=True)
    assert isinstance(d, dict)
    return str(d.pop("name")), d
