"""The ``egohod`` command. Each subcommand lives in its own module and takes ``key=value``
arguments (Hydra/OmegaConf dotlist style)::

    egohod export encoder=egovideo_b checkpoint=base_best.pt format=onnx out=enc.onnx
    egohod score ek100-mir --sim SIM.npy --relevancy REL.pkl
    egohod eval ek100-mir encoder=egovideo_b checkpoint=... data=...
    egohod extract encoder=egovideo_b videos=DIR stride=...
    egohod hod run ...
    egohod head segmentation data=DIR features=DIR head=mstcn split=all out=DIR
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
COMMANDS = {
    "export": ("egohod.export", "main", "export a frozen encoder (safetensors / torchscript / onnx)"),
    "score": ("egohod.benchmarks.cli", "score_main", "score saved outputs with the official metrics"),
    "eval": ("egohod.benchmarks.cli", "eval_main", "zero-shot evaluation on an egocentric benchmark"),
    "extract": ("egohod.benchmarks.cli", "extract_main", "per-video features for NLQ/MQ/segmentation"),
    "hod": ("egohod.hod.cli", "main", "HOD pipeline: detect -> dynamics -> narrate -> style filter"),
    "head": ("egohod.benchmarks.heads.cli", "main", "train heads on frozen features: segmentation (+ nlq, mq)"),
    "models": ("egohod.cli", "models_main", "list registered models and encoders"),
}


def models_main(argv: list[str]) -> int:
    from .models import get_input_spec, list_encoders, list_models

    for kind, names in (("model", list_models()), ("encoder", list_encoders())):
        for n in names:
            s = get_input_spec(n)
            weights = s.extra.get("weights")
            print(f"{kind:8s} {n:18s} {s.image_size}px x{s.num_frames} frames -> {s.embed_dim}-d"
                  + (f"  weights: {weights}" if weights else ""))
    return 0


def _usage() -> str:
    lines = ["usage: egohod <command> [args...]", "", "commands:"]
    lines += [f"  {k:8s} {v[2]}" for k, v in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"egohod: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[cmd]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
