"""Typed configs of ``egohod eval`` and ``egohod extract`` (loaded by :func:`egohod.config.load_config`).

``egohod eval <benchmark> key=value ...``: the dataclass defaults, then the benchmark's protocol
file ``configs/eval/<benchmark>.yaml`` (frames, templates, video folder; shipped with the
package), then the command line. Unknown keys, wrongly typed or out-of-range values raise
:class:`egohod.config.ConfigError` naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..config import ConfigError, load_config

BENCHMARKS = ("ek100-mir", "ek100-cls", "egtea", "egomcq")


@dataclass
class EvalConfig:
    benchmark: str = ""
    encoder: str = "egovideo_b"          # a registered model name (egohod models)
    checkpoint: Optional[str] = None     # None: random weights (smoke tests only)
    trust_pickle: bool = False           # unpickle the checkpoint / relevancy file without the allowlist
    data: str = ""                       # folder with the benchmark's annotation files
    videos: str = "videos"               # video folder, absolute or relative to `data`
    out: str = "outputs/eval"            # results: <out>/<benchmark>.json and .md
    batch: int = 16                      # clips per forward pass
    text_batch: int = 256                # texts per forward pass
    workers: int = 0                     # DataLoader processes decoding video
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    precision: str = "fp32"              # fp32 | fp16 | bf16 (EgoHOD's scripts run fp16 on GPU)
    num_frames: int = 4                  # frames per clip fed to the video tower
    dual: bool = False                   # motion-adapter dual path: encode_video_dual(fast, slow clip)
    slow_frames: int = 16                # frames of the slow clip when dual=true
    templates: list[str] = field(default_factory=lambda: ["{}"])  # class prompts (ek100-cls, egtea)
    mir_text: str = "narration"          # narration | sentence (see docs/benchmarks.md)
    cls_clips: str = "retrieval_test"    # retrieval_test (EgoHOD) | validation (LaViLa)
    chunk_seconds: float = 15.0          # EgoMCQ chunked layout
    limit: Optional[int] = None          # evaluate the first N samples only (recorded in results)
    seed: int = 0                        # torch seed before building the model (random-weight runs)


@dataclass
class ExtractConfig:
    encoder: str = "egovideo_b"          # a registered frozen encoder (egohod models)
    checkpoint: Optional[str] = None
    videos: str = ""                     # folder searched recursively for video files
    out: str = ""                        # <out>/<relative path without suffix>.npy [T, D]
    stride: float = 1.0                  # seconds between window starts
    label_fps: Optional[float] = None    # frame rate of frame labels to match (segmentation): then windows
    label_stride: int = 1                #   start every label_stride / label_fps s (instead of stride=)
    feature_layout: str = "TD"           # TD: [T, D] per video; DT: [D, T] (MS-TCN's layout)
    window: Optional[float] = None       # window length in seconds (default: stride)
    num_frames: Optional[int] = None     # frames per window (default: the encoder's)
    batch: int = 32                      # windows per forward pass
    workers: int = 0                     # DataLoader processes decoding windows
    device: str = "auto"
    extensions: list[str] = field(default_factory=lambda: [".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov"])
    overwrite: bool = False              # recompute videos whose outputs already exist
    seed: int = 0                        # torch seed before building the encoder (random-weight runs)


def _check_device(name: str) -> None:
    from ..device import resolve_device

    try:
        resolve_device(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def load_eval_config(benchmark: str, argv: list[str]) -> EvalConfig:
    """Dataclass defaults < protocol file ``configs/eval/<benchmark>.yaml`` < ``argv`` (``key=value``)."""
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    out = load_config(EvalConfig, argv, config=f"eval/{benchmark}", layers=[{"benchmark": benchmark}],
                      command=f"egohod eval {benchmark}")
    if out.benchmark != benchmark:
        raise ConfigError(f"the benchmark is the subcommand ({benchmark}); drop benchmark={out.benchmark}")
    _validate_eval(out)
    return out


def _validate_eval(cfg: EvalConfig) -> None:
    if not cfg.data:
        raise ConfigError("data=DIR is required (the folder holding the benchmark's annotation files)")
    if cfg.batch < 1 or cfg.text_batch < 1 or cfg.num_frames < 1 or cfg.slow_frames < 1:
        raise ConfigError("batch, text_batch, num_frames and slow_frames must be >= 1")
    if cfg.precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"precision must be fp32, fp16 or bf16; got {cfg.precision!r}")
    if cfg.mir_text not in ("narration", "sentence"):
        raise ConfigError(f"mir_text must be 'narration' or 'sentence'; got {cfg.mir_text!r}")
    if cfg.cls_clips not in ("retrieval_test", "validation"):
        raise ConfigError(f"cls_clips must be 'retrieval_test' or 'validation'; got {cfg.cls_clips!r}")
    if not cfg.templates or any("{}" not in t for t in cfg.templates):
        raise ConfigError(f"templates must be a non-empty list of strings containing '{{}}'; got {cfg.templates}")
    if cfg.benchmark in ("ek100-mir", "egomcq") and cfg.templates != ["{}"]:
        raise ConfigError(f"templates apply to class names (ek100-cls, egtea); {cfg.benchmark} embeds captions "
                          f"as they are (as upstream), so templates={cfg.templates} would be ignored")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError("limit must be >= 1")
    _check_device(cfg.device)


def load_extract_config(argv: list[str]) -> ExtractConfig:
    cfg = load_config(ExtractConfig, argv, command="egohod extract")
    if not cfg.videos or not cfg.out:
        raise ConfigError("videos=DIR and out=DIR are required")
    if cfg.stride <= 0 or (cfg.window is not None and cfg.window <= 0):
        raise ConfigError("stride and window must be positive (seconds)")
    if cfg.label_fps is not None and (cfg.label_fps <= 0 or cfg.label_stride < 1 or cfg.stride != 1.0):
        raise ConfigError("label_fps= must be positive and label_stride= >= 1; with them the windows start every "
                          "label_stride / label_fps seconds, so leave stride= out")
    if cfg.feature_layout not in ("TD", "DT"):
        raise ConfigError(f"feature_layout must be TD ([T, D]) or DT ([D, T]); got {cfg.feature_layout!r}")
    if cfg.batch < 1 or (cfg.num_frames is not None and cfg.num_frames < 1):
        raise ConfigError("batch and num_frames must be >= 1")
    _check_device(cfg.device)
    return cfg
