"""``egohod hod <command> key=value ...`` (also ``python -m egohod.hod``).

Commands::

    run          clips + videos -> detections -> dynamics -> narrations (one shard; resumable;
                 retry=failed re-runs only the failed clips)
    renarrate    new narrations from the stored dynamics of an output (narrator=...; no detector)
    merge        join the shards of an output folder into hod.csv / hod_records.jsonl / failures.csv
    features     clip features from an egohod encoder (.npz) for the style filter
    style-train  train the ego-style filter (2-layer MLP) on labelled clip features
    style-apply  score clips with a trained filter and keep those above the threshold
    list         registered detectors and narrators, each with its settings and their defaults

Settings are Hydra overrides of ``configs/hod/<command>.yaml``; ``egohod hod <command> --cfg``
prints the composed config without running.
"""
from __future__ import annotations

import sys

COMMANDS = {
    "run": "run",
    "renarrate": "renarrate",
    "merge": "merge",
    "features": "features",
    "style-train": "style_train",
    "style-apply": "style_apply",
}


def _usage() -> str:
    return __doc__.split("Commands::", 1)[1].split("Settings", 1)[0].rstrip() + "\n"


def _describe(registry, name: str) -> str:
    """``kind=name: first docstring line`` and its settings with their defaults (as they are
    written on the command line), wrapped."""
    import dataclasses
    import json
    import textwrap

    def value(f) -> str:
        v = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if isinstance(v, str) and v and not set(v) & set(" {}[],='\""):
            return v
        return json.dumps(v)

    settings = " ".join(f"{f.name}={value(f)}" for f in dataclasses.fields(registry.options_class(name)))
    body = textwrap.fill(settings, width=100, initial_indent="    ", subsequent_indent="    ")
    return f"{registry.kind}={name}: {registry.entry(name).description}\n{body}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: egohod hod <command> key=value ...\n\ncommands:" + _usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "list":
        from .detectors.base import DETECTORS
        from .narrators.base import NARRATORS

        for registry in (DETECTORS, NARRATORS):
            print(f"{registry.plural}:", ", ".join(registry.list()))
        for registry in (DETECTORS, NARRATORS):
            print()
            for name in registry.list():
                print(_describe(registry, name))
        return 0
    if cmd not in COMMANDS:
        print(f"egohod hod: unknown command {cmd!r}\ncommands:{_usage()}", file=sys.stderr)
        return 2
    from omegaconf import OmegaConf

    from ..config import exit_on_config_error
    from .config import compose, config_dir

    if "-h" in rest or "--help" in rest:
        path = config_dir() / f"{COMMANDS[cmd]}.yaml"
        print(f"usage: egohod hod {cmd} key=value ...   (Hydra overrides of {path})\n")
        print(path.read_text())
        if cmd in ("run", "renarrate"):
            print("# detector.KEY / narrator.KEY: the settings of each component and their defaults: `egohod hod list`")
        return 0

    show = "--cfg" in rest
    with exit_on_config_error(f"egohod hod {cmd}"):
        cfg = compose(COMMANDS[cmd], [a for a in rest if a != "--cfg"])
    if show:
        print(OmegaConf.to_yaml(cfg))
        return 0
    from ..fileio import FolderLockedError
    from .runner import IncompatibleOutputError, NarratorUnavailableError

    try:
        return _dispatch(cmd, cfg, rest)
    except (IncompatibleOutputError, FolderLockedError) as e:
        print(f"egohod hod {cmd}: {e}", file=sys.stderr)
        return 2
    except NarratorUnavailableError as e:
        print(f"egohod hod {cmd}: {e}", file=sys.stderr)
        return 3


def _dispatch(cmd: str, cfg, argv: list[str]) -> int:
    if cmd == "run":
        from .runner import run_shard

        counts = run_shard(cfg, argv=argv)
        if counts.get("clips", 0) > 0 and counts.get("ok", 0) == 0:
            print(f"egohod hod run: all {counts['clips']} clips of this shard failed (see the part files' "
                  f"'reason' fields or run `egohod hod merge` for failures.csv); check the inputs", file=sys.stderr)
            return 1
        return 0
    if cmd == "renarrate":
        from .runner import renarrate

        renarrate(cfg)
        return 0
    if cmd == "merge":
        from .runner import merge

        merge(cfg.out, cfg.allow_incomplete)
        return 0
    from . import style_filter

    if cmd == "features":
        style_filter.features_main(cfg)
    elif cmd == "style-train":
        style_filter.train_main(cfg)
    else:
        style_filter.apply_main(cfg)
    return 0
