"""``egohod export``: write a frozen encoder as safetensors, TorchScript or ONNX, then check it.

::

    egohod export encoder=egovideo_b checkpoint=base_best.pt format=onnx out=enc.onnx \\
        [num_frames=4] [batch=2] [height=224] [width=224] [tol=1e-3] [opset=18] [seed=0] \\
        [single_frame=true] [dynamic_hw=true] [fp16=true] [latency_runs=20]

What is exported is the frozen encoder of ``egohod.load_encoder`` (uint8 frames in, embedding out,
preprocessing included):

* ``safetensors``: the encoder's weights (keys ``visual.*``; reload with
  ``egohod.load_encoder(checkpoint=OUT)``: the file names its encoder) and, in the file metadata
  (written by :func:`egohod.models.checkpoint_io.write_checkpoint`), ``egohod_format``,
  ``encoder``, ``num_frames``, ``weights`` (sha256 of the source checkpoint, or
  ``random:seed=<seed>``), ``seed`` and the JSON ``input_spec``;
* ``torchscript``: a traced module ``frames uint8 [B, T, H, W, 3] -> [B, E]`` (``torch.jit.load``),
  the same metadata as JSON in its extra file ``egohod.json``;
* ``onnx``: the same graph with a dynamic batch axis (input ``frames``, output ``embedding``), the
  same metadata in the model's ``metadata_props``.

Without ``checkpoint`` the encoder has the random weights of ``egohod.load_encoder(encoder,
seed=seed)`` (``seed`` default 0, recorded as ``weights: random:seed=<seed>``), so an exported
random encoder is checked against ``load_encoder`` with the recorded seed. ``seed`` also seeds
the random parity clips.

The TorchScript / ONNX graph (:class:`DeployGraph`) takes uint8 RGB channels-last frames and
does the encoder's own resize + centre crop + normalisation inside; its batch axis is dynamic.
Its input is ``[B, T, H, W, 3]`` with ``T = num_frames`` and ``H, W`` = ``height``, ``width``
(default: the variant's clip length and image size, from its input spec; give your camera's size
to bake that resize in). Options:

* ``single_frame=true``: the input is one frame ``[B, H, W, 3]``, repeated over the clip inside
  the graph (what a robot camera gives at each step);
* ``dynamic_hw=true`` (ONNX): H and W are dynamic axes too; any size at least the crop works;
* ``fp16=true``: the tower's weights and compute in float16 (the output stays float32); the
  default ``tol`` becomes 1e-2.

After writing, the file is loaded back (ONNX in onnxruntime) and run on random uint8 clips of
``batch`` and ``batch + 1`` items (and another H, W with ``dynamic_hw``); the maximum absolute
difference to the float32 PyTorch encoder is printed, and the command exits non-zero if it
exceeds ``tol``. An ONNX export also prints onnxruntime's latency at batch 1 on this machine
(median of ``latency_runs`` runs, CPU provider). Every export writes a JSON card beside the file
(``<out>.card.json``): variant, weights (sha256 of the checkpoint, or ``RANDOM WEIGHTS:seed=N``),
input/output contract, parity and, for ONNX, the latency.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .fileio import atomic_output

FORMATS = ("safetensors", "torchscript", "onnx")


@dataclass
class ExportConfig:
    encoder: str = "???"
    out: str = "???"
    format: str = "safetensors"
    checkpoint: str | None = None
    num_frames: int | None = None     # frames per clip (default: the encoder's); `frames=` is the old name
    batch: int = 2
    height: int | None = None
    width: int | None = None
    tol: float | None = None          # parity limit (max abs diff); default 1e-3, or 1e-2 with fp16
    opset: int = 18
    seed: int = 0                     # random weights (no checkpoint): load_encoder(..., seed=); parity clips
    single_frame: bool = False        # graph input [B, H, W, 3]: one frame, repeated over the clip
    dynamic_hw: bool = False          # ONNX: height and width are dynamic axes (batch always is)
    fp16: bool = False                # tower weights and compute in float16 (TorchScript / ONNX)
    latency_runs: int = 20            # ONNX: timed onnxruntime runs at batch 1 (0 = no timing)


def parse_args(argv: list[str]) -> ExportConfig:
    """``key=value`` arguments into a validated :class:`ExportConfig`; raises
    :class:`egohod.config.ConfigError` (a ``ValueError``) naming what to change."""
    from .config import ConfigError, load_config

    cfg = load_config(ExportConfig, argv, command="egohod export", renamed={"frames": "num_frames"})
    if cfg.format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}; got {cfg.format!r}")
    if cfg.batch < 1:
        raise ConfigError(f"batch must be >= 1; got {cfg.batch}")
    if cfg.dynamic_hw and cfg.format != "onnx":
        raise ConfigError("dynamic_hw=true needs format=onnx (a traced TorchScript graph keeps the traced "
                          "height and width); drop dynamic_hw or export ONNX")
    if cfg.format == "safetensors" and (cfg.single_frame or cfg.fp16):
        raise ConfigError("single_frame and fp16 shape a graph: use format=onnx or format=torchscript")
    if cfg.latency_runs < 0:
        raise ConfigError(f"latency_runs must be >= 0; got {cfg.latency_runs}")
    if cfg.tol is None:
        cfg.tol = 1e-2 if cfg.fp16 else 1e-3
    return cfg


def random_clips(batch: int, frames: int | None, height: int, width: int, seed: int) -> torch.Tensor:
    """Random uint8 clips ``[batch, frames, H, W, 3]`` (``frames=None``: single frames ``[batch, H, W, 3]``)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, height, width, 3) if frames is None else (batch, frames, height, width, 3)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)


class DeployGraph(nn.Module):
    """The exported graph: uint8 RGB frames -> float32 embedding of a frozen encoder.

    The encoder's preprocessing with :func:`egohod.preprocess.resize_crop_symbolic` (same pixels
    as the eager encoder, but export keeps H and W symbolic), then its tower; ``single_frame``
    takes ``[B, H, W, 3]`` and repeats the frame over the clip, ``dtype`` is the tower's.
    """

    def __init__(self, enc, single_frame: bool = False, dtype: torch.dtype = torch.float32):
        super().__init__()
        from .models.baselines import FrozenImageEncoder

        self.spec = enc.input_spec
        self.num_frames = enc.num_frames
        self.single_frame = bool(single_frame)
        self.per_frame = isinstance(enc, FrozenImageEncoder)  # image backbones embed frames one by one
        self.dtype = dtype
        self.tower = copy.deepcopy(enc.tower()).to(dtype)
        self.eval()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        from .preprocess import normalize, resize_crop_symbolic

        s = self.spec
        if self.single_frame:
            frames = frames.unsqueeze(1).expand(-1, self.num_frames, -1, -1, -1)
        b, t, h, w, c = frames.shape
        x = frames.reshape(b * t, h, w, c).permute(0, 3, 1, 2).to(torch.float32) / 255.0
        x = normalize(resize_crop_symbolic(x, s.eval_resize, s.image_size), s.mean, s.std).to(self.dtype)
        if self.per_frame:
            return self.tower(x).float().reshape(b, -1)
        x = x.reshape(b, t, 3, s.image_size, s.image_size).permute(0, 2, 1, 3, 4)
        return self.tower(x).float()


def export_metadata(enc, cfg: ExportConfig) -> dict[str, str]:
    """What an exported file records about its encoder (string values: safetensors metadata)."""
    return {"egohod_format": "frozen_encoder", "encoder": enc.name, "num_frames": str(enc.num_frames),
            "weights": enc.weights, "seed": str(cfg.seed), "input_spec": json.dumps(enc.input_spec.to_dict())}


def read_export_metadata(path: str | Path) -> dict[str, str]:
    """The :func:`export_metadata` record of an exported file of any format."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".safetensors":
        from .models.checkpoint_io import read_checkpoint_meta

        return read_checkpoint_meta(path)
    if path.suffix == ".onnx":
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if head.startswith(b"PK"):  # TorchScript: a zip archive
        extra = {"egohod.json": ""}
        torch.jit.load(str(path), _extra_files=extra)
        return json.loads(extra["egohod.json"] or "{}")
    raise ValueError(f"{path}: not an egohod export (expected .safetensors, .onnx or a TorchScript archive)")


def export_safetensors(enc, out: Path, cfg: ExportConfig) -> None:
    from .models.checkpoint_io import write_checkpoint

    write_checkpoint(out, enc.state_dict(), export_metadata(enc, cfg))


def export_torchscript(enc, example: torch.Tensor, out: Path, meta: dict | None = None) -> None:
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # the graph is specialised to the clip shape on purpose (see the module docstring)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(enc, (example,), check_trace=False)
    with atomic_output(out) as tmp:
        traced.save(str(tmp), _extra_files={"egohod.json": json.dumps(meta or {})})


def export_onnx(enc, example: torch.Tensor, out: Path, opset: int, meta: dict | None = None,
                dynamic_hw: bool = False) -> None:
    dims = {0: torch.export.Dim("batch", min=1, max=4096)}
    if dynamic_hw:
        h_axis = example.dim() - 3  # [B, (T,) H, W, 3]
        dims[h_axis] = torch.export.Dim("height", min=16, max=4096)
        dims[h_axis + 1] = torch.export.Dim("width", min=16, max=4096)
    with atomic_output(out) as tmp:
        with torch.no_grad():
            torch.onnx.export(enc, (example,), str(tmp), input_names=["frames"], output_names=["embedding"],
                              dynamic_shapes=(dims,), opset_version=opset, dynamo=True,
                              external_data=False, verbose=False)
        if meta:
            import onnx

            model = onnx.load(str(tmp))
            for k, v in meta.items():
                entry = model.metadata_props.add()
                entry.key, entry.value = k, v
            onnx.save(model, str(tmp))


def load_exported(fmt: str, out: Path, cfg: ExportConfig):
    """A callable ``uint8 tensor -> float tensor`` running the written file."""
    import warnings

    if fmt == "safetensors":
        from .models import load_encoder

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reloaded = load_encoder(cfg.encoder, checkpoint=out, num_frames=cfg.num_frames)
        return reloaded
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(out))
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(sess.run(["embedding"], {"frames": x.numpy()})[0]))

    return run


def parity(enc, exported, cfg: ExportConfig, frames: int | None, height: int, width: int) -> list[dict]:
    """Max abs difference of the exported file to the float32 eager encoder on random inputs
    (``frames=None``: single frames); with ``dynamic_hw`` also at another height and width."""
    cases = [(cfg.batch, height, width), (cfg.batch + 1, height, width)]
    if cfg.dynamic_hw:
        cases.append((1, height + 8, width + 24))
    rows = []
    for i, (b, h, w) in enumerate(cases):
        x = random_clips(b, frames, h, w, cfg.seed + 1 + i)
        with torch.no_grad():
            ref = enc(x)
            got = exported(x)
        row = {"batch": b, "height": h, "width": w}
        if tuple(got.shape) != tuple(ref.shape):
            rows.append({**row, "max_abs_diff": float("inf"), "error": f"shape {tuple(got.shape)} != {tuple(ref.shape)}"})
            continue
        rows.append({**row, "max_abs_diff": float((got.float() - ref).abs().max())})
    return rows


def onnx_latency(out: Path, example: torch.Tensor, runs: int) -> dict:
    """onnxruntime (CPU provider) latency of one batch-1 call: median and min of ``runs`` timed
    calls after 3 warm-up calls, with the machine it ran on."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = example[:1].numpy()
    for _ in range(3):
        sess.run(["embedding"], {"frames": x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(["embedding"], {"frames": x})
        times.append(time.perf_counter() - t0)
    return {"batch": 1, "runs": runs, "median_ms": 1e3 * float(np.median(times)), "min_ms": 1e3 * float(min(times)),
            "provider": "CPUExecutionProvider", "onnxruntime": ort.__version__,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpu_count": os.cpu_count(), "intra_op_threads": sess.get_session_options().intra_op_num_threads}


def input_contract(cfg: ExportConfig, frames: int, height: int, width: int) -> dict:
    """What the exported file takes and gives (the card's ``input`` / ``output``)."""
    h = "H" if cfg.dynamic_hw else height
    w = "W" if cfg.dynamic_hw else width
    shape = ["B", h, w, 3] if cfg.single_frame else ["B", frames, h, w, 3]
    return {"name": "frames", "dtype": "uint8", "shape": shape, "layout": "RGB, channels last, 0..255",
            "dynamic_axes": ["B"] + (["H", "W"] if cfg.dynamic_hw else []),
            "single_frame": cfg.single_frame, "frames_per_clip": frames}


def write_card(out: Path, result: dict, enc, cfg: ExportConfig) -> Path:
    """``<out>.card.json``: what a deployment needs to know about the exported file."""
    from .fileio import atomic_write_json
    from .models import is_random_weights, random_weights_seed

    s = enc.input_spec
    weights = (f"RANDOM WEIGHTS:seed={random_weights_seed(enc.weights)}" if is_random_weights(enc.weights)
               else enc.weights)
    card = {
        "variant": enc.name, "format": cfg.format, "file": out.name, "bytes": result["bytes"],
        "weights": weights, "checkpoint": cfg.checkpoint,
        "input": result.get("contract"),
        "preprocessing": (("inside egohod.load_encoder" if cfg.format == "safetensors" else "inside the graph")
                          + f": short side resized to {s.eval_resize} (bicubic, antialiased), "
                          f"centre crop {s.image_size}, (x / 255 - mean) / std"),
        "input_spec": s.to_dict(),
        "output": {"name": "embedding", "dtype": "float32", "shape": ["B", enc.embed_dim], "l2_normalised": False},
        "precision": "float16" if cfg.fp16 else "float32",
        "parity": {"reference": "float32 PyTorch encoder (egohod.load_encoder)", "max_abs_diff": result["max_abs_diff"],
                   "tol": cfg.tol, "ok": result["ok"], "cases": result["parity"]},
    }
    if cfg.format == "onnx":
        card["opset"] = cfg.opset
    if "latency" in result:
        card["latency"] = result["latency"]
    path = out.with_name(out.name + ".card.json")
    atomic_write_json(path, card)
    return path


def run_export(cfg: ExportConfig) -> dict:
    from .models import load_encoder

    enc = load_encoder(cfg.encoder, checkpoint=cfg.checkpoint, num_frames=cfg.num_frames, seed=cfg.seed)
    spec = enc.input_spec
    frames, height, width = enc.num_frames, cfg.height or spec.image_size, cfg.width or spec.image_size
    cfg.num_frames = frames
    if cfg.tol is None:
        cfg.tol = 1e-2 if cfg.fp16 else 1e-3
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clip_frames = None if cfg.single_frame else frames
    example = random_clips(cfg.batch, clip_frames, height, width, cfg.seed)
    meta = dict(export_metadata(enc, cfg), single_frame=str(cfg.single_frame).lower(),
                dynamic_hw=str(cfg.dynamic_hw).lower(), precision="float16" if cfg.fp16 else "float32")
    if cfg.format == "safetensors":
        export_safetensors(enc, out, cfg)
    else:
        graph = DeployGraph(enc, cfg.single_frame, torch.float16 if cfg.fp16 else torch.float32)
        if cfg.format == "torchscript":
            export_torchscript(graph, example, out, meta)
        else:
            export_onnx(graph, example, out, cfg.opset, meta, dynamic_hw=cfg.dynamic_hw)
    rows = parity(enc, load_exported(cfg.format, out, cfg), cfg, clip_frames, height, width)
    worst = max(r["max_abs_diff"] for r in rows)
    contract = input_contract(cfg, frames, height, width)
    shape = ", ".join(str(d) for d in contract["shape"])
    result = {"encoder": cfg.encoder, "format": cfg.format, "out": str(out), "bytes": out.stat().st_size,
              "input": f"uint8 [{shape}]", "contract": contract, "embed_dim": enc.embed_dim,
              "weights": enc.weights, "seed": cfg.seed, "parity": rows, "max_abs_diff": worst, "tol": cfg.tol,
              "ok": bool(worst <= cfg.tol)}
    if cfg.format == "onnx" and cfg.latency_runs:
        result["latency"] = onnx_latency(out, example, cfg.latency_runs)
    result["card"] = str(write_card(out, result, enc, cfg))
    return result


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    try:
        cfg = parse_args(argv)
    except ConfigError as e:
        print(f"egohod export: {e}", file=sys.stderr)
        return 2
    result = run_export(cfg)
    from .models import is_random_weights

    if is_random_weights(result["weights"]):
        print(f"encoder {cfg.encoder}: RANDOM WEIGHTS (seed {cfg.seed}; no checkpoint given)")
    for r in result["parity"]:
        print(f"parity {result['format']} batch={r['batch']}: max abs diff {r['max_abs_diff']:.3e}"
              + (f" at {r['height']}x{r['width']}" if cfg.dynamic_hw else "")
              + (f" ({r['error']})" if "error" in r else ""))
    if "latency" in result:
        lat = result["latency"]
        print(f"onnxruntime latency batch=1: median {lat['median_ms']:.2f} ms, min {lat['min_ms']:.2f} ms "
              f"over {lat['runs']} runs ({lat['provider']}, {lat['cpu_count']} CPUs, {lat['machine']})")
    print(json.dumps(result, indent=2))
    if not result["ok"]:
        print(f"egohod export: parity check FAILED: max abs diff {result['max_abs_diff']:.3e} > tol {cfg.tol}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
