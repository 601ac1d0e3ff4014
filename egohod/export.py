"""``egohod export``: write a frozen encoder as safetensors, TorchScript or ONNX, then check it.

::

    egohod export encoder=egovideo_b checkpoint=base_best.pt format=onnx out=enc.onnx \\
        [num_frames=4] [batch=2] [height=224] [width=224] [tol=1e-3] [opset=18] [seed=0]

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

The traced/ONNX graphs are specialised to the ``num_frames``, ``height`` and ``width`` given here
(default: the variant's clip length and image size, so resizing is a no-op; give your camera's
size to bake the resize + centre crop in). After writing, the file is loaded back (ONNX in
onnxruntime) and run on random uint8 clips of ``batch`` and ``batch + 1`` items; the maximum
absolute difference to the eager module is printed, and the command exits non-zero if it
exceeds ``tol``.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

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
    tol: float = 1e-3
    opset: int = 18
    seed: int = 0                     # random weights (no checkpoint): load_encoder(..., seed=); parity clips


def parse_args(argv: list[str]) -> ExportConfig:
    """``key=value`` arguments into a validated :class:`ExportConfig`; raises
    :class:`egohod.config.ConfigError` (a ``ValueError``) naming what to change."""
    from .config import ConfigError, load_config

    cfg = load_config(ExportConfig, argv, command="egohod export", renamed={"frames": "num_frames"})
    if cfg.format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}; got {cfg.format!r}")
    if cfg.batch < 1:
        raise ConfigError(f"batch must be >= 1; got {cfg.batch}")
    return cfg


def random_clips(batch: int, frames: int, height: int, width: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, frames, height, width, 3), dtype=torch.uint8, generator=g)


def _atomic_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.tmp{os.getpid()}")


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
    tmp = _atomic_path(out)
    traced.save(str(tmp), _extra_files={"egohod.json": json.dumps(meta or {})})
    os.replace(tmp, out)


def export_onnx(enc, example: torch.Tensor, out: Path, opset: int, meta: dict | None = None) -> None:
    tmp = _atomic_path(out)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        torch.onnx.export(enc, (example,), str(tmp), input_names=["frames"], output_names=["embedding"],
                          dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True,
                          external_data=False, verbose=False)
    if meta:
        import onnx

        model = onnx.load(str(tmp))
        for k, v in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(model, str(tmp))
    os.replace(tmp, out)


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


def parity(enc, exported, cfg: ExportConfig, frames: int, height: int, width: int) -> list[dict]:
    rows = []
    for i, b in enumerate((cfg.batch, cfg.batch + 1)):
        x = random_clips(b, frames, height, width, cfg.seed + 1 + i)
        with torch.no_grad():
            ref = enc(x)
            got = exported(x)
        if tuple(got.shape) != tuple(ref.shape):
            rows.append({"batch": b, "max_abs_diff": float("inf"), "error": f"shape {tuple(got.shape)} != {tuple(ref.shape)}"})
            continue
        rows.append({"batch": b, "max_abs_diff": float((got.float() - ref).abs().max())})
    return rows


def run_export(cfg: ExportConfig) -> dict:
    from .models import load_encoder

    enc = load_encoder(cfg.encoder, checkpoint=cfg.checkpoint, num_frames=cfg.num_frames, seed=cfg.seed)
    spec = enc.input_spec
    frames, height, width = enc.num_frames, cfg.height or spec.image_size, cfg.width or spec.image_size
    cfg.num_frames = frames
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = random_clips(cfg.batch, frames, height, width, cfg.seed)
    if cfg.format == "safetensors":
        export_safetensors(enc, out, cfg)
    elif cfg.format == "torchscript":
        export_torchscript(enc, example, out, export_metadata(enc, cfg))
    else:
        export_onnx(enc, example, out, cfg.opset, export_metadata(enc, cfg))
    rows = parity(enc, load_exported(cfg.format, out, cfg), cfg, frames, height, width)
    worst = max(r["max_abs_diff"] for r in rows)
    return {"encoder": cfg.encoder, "format": cfg.format, "out": str(out), "bytes": out.stat().st_size,
            "input": f"uint8 [B, {frames}, {height}, {width}, 3]", "embed_dim": enc.embed_dim,
            "weights": enc.weights, "seed": cfg.seed, "parity": rows, "max_abs_diff": worst, "tol": cfg.tol,
            "ok": bool(worst <= cfg.tol)}


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
              + (f" ({r['error']})" if "error" in r else ""))
    print(json.dumps(result, indent=2))
    if not result["ok"]:
        print(f"egohod export: parity check FAILED: max abs diff {result['max_abs_diff']:.3e} > tol {cfg.tol}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
