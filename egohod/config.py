"""The one way into configuration for every egohod command: Hydra composition over a typed
dataclass schema, with the YAML shipped inside the package.

Use it like this (a new command adds nothing else)::

    from dataclasses import dataclass
    from omegaconf import MISSING
    from egohod.config import ConfigError, exit_on_config_error, load_config

    @dataclass
    class HeadConfig:                     # the schema: the one place the defaults live
        features: str = MISSING           # required: `features=DIR` must be given
        num_frames: int = 4
        device: str = "auto"
        out: str = "outputs/head"

    # library code: schema defaults < configs/<config>.yaml (optional) < layers < key=value overrides
    cfg = load_config(HeadConfig, ["features=DIR", "num_frames=8"])             # -> a HeadConfig
    cfg = load_config(EvalConfig, argv, config="eval/ek100-mir")                # with a packaged YAML

    # the command's entry point (and only it) turns a ConfigError into an exit code
    def main(argv):
        with exit_on_config_error("egohod head"):
            cfg = load_config(HeadConfig, argv)
        ...

Overrides use Hydra's override grammar (``a.b=1``, ``xs=[1,2]``, ``x=null``; quote values
holding ``{}`` or commas: ``templates=['a video of {}']``). An argument that is not ``key=value``, an
unknown key, a wrongly typed value or a missing required one raises :class:`ConfigError` (a
``ValueError``), whose message names the key and lists the known ones.

YAML lives in the repository's top-level ``configs/`` folder; ``egohod/configs`` points at it (a
symbolic link in the source tree, real files in a wheel: ``pyproject.toml`` ships them as
package data), so :func:`config_root` finds it through the package, installed or editable.
``$EGOHOD_CONFIGS`` points at another folder of the same layout.

Shared settings have one name in every command: ``num_frames`` (frames per clip), ``layout``
(``auto | chunked | file``), ``device`` (``auto | cpu | cuda[:N]``, :mod:`egohod.device`) and
``out`` (the output file or folder).

:func:`compose` returns the raw ``DictConfig`` for configs that choose components through Hydra
config groups (``egohod hod``: ``detector=100doh``); it uses Hydra's global state, so do not call
it from inside an ``@hydra.main`` app. :func:`load_config` is for everything else and keeps no
global state.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

__all__ = ["ConfigError", "config_root", "config_file", "load_config", "compose", "options_schema",
           "make_options", "rename_arguments", "upgrade_recorded", "transport",
           "transport_fields", "TRANSPORT", "exit_on_config_error"]

ENV_CONFIGS = "EGOHOD_CONFIGS"


class ConfigError(ValueError):
    """A setting that does not fit its schema or its command; the message says what to change.

    ``known``: the schema's top-level keys (empty when not relevant); ``argument``: the offending
    command-line argument when it is not ``key=value`` at all."""

    def __init__(self, message: str, known: Sequence[str] = (), argument: str | None = None):
        super().__init__(message)
        self.known, self.argument = list(known), argument


def config_root() -> Path:
    """The folder holding the packaged YAML (``configs/`` of the checkout, ``egohod/configs`` of a wheel)."""
    env = os.environ.get(ENV_CONFIGS)
    if env:
        root = Path(env)
    else:
        from importlib.resources import files

        root = Path(str(files("egohod") / "configs"))
    if not root.is_dir():
        raise ConfigError(f"egohod's config folder {root} is missing: reinstall egohod, or set ${ENV_CONFIGS} "
                          f"to a copy of the repository's configs/ folder")
    return root.resolve()


def config_file(name: str) -> Path:
    """``configs/<name>.yaml`` (e.g. ``eval/ek100-mir``), or a :class:`ConfigError` naming where it looked."""
    path = config_root() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"config {name!r} not found: no {path}")
    return path


def _schema_keys(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def _parse_overrides(argv: Sequence[str], known: list[str], schema_name: str) -> list:
    """Hydra ``Override`` objects of ``argv``: plain ``key=value`` on a key of the schema."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    for a in argv:
        if "=" not in a:
            raise ConfigError(f"arguments are key=value; got {a!r} (known keys: {', '.join(known)})", known, argument=a)
        key = a.split("=", 1)[0]
        if key[:1] in "+~":
            raise ConfigError(f"{a!r}: the settings are fixed by the schema; write {key.lstrip('+~')}=VALUE "
                              f"(known keys: {', '.join(known)})", known, argument=a)
        top = key.split(".", 1)[0]
        if top not in known:
            import difflib

            close = difflib.get_close_matches(top, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Key {top!r} not in {schema_name!r}{hint} (known keys: {', '.join(known)})", known)
    try:
        parsed = OverridesParser.create().parse_overrides(list(argv))
    except HydraException as e:
        raise ConfigError(str(e), known) from None
    for o in parsed:
        if o.is_sweep_override():
            raise ConfigError(f"{o.input_line!r} is a sweep; give one value (quote values holding commas: "
                              f"key='a,b', or a list: key=[a,b])", known, argument=o.input_line)
    return parsed


def rename_arguments(argv: Sequence[str], renamed: Mapping[str, str], command: str = "", *,
                     warn: bool = True) -> list[str]:
    """``argv`` with the old key names a command still accepts (``renamed``: old -> new; dotted
    keys such as ``sampling.frames_per_clip`` too, and ``old.sub=`` under a renamed group) replaced
    by their new names; a FutureWarning says which to use (``warn=False``: arguments nobody typed,
    such as overrides recorded in an older output folder). Hydra apps call it on ``sys.argv``
    before ``@hydra.main`` parses it."""
    import warnings

    out = []
    for argument in argv:
        key, sep, value = argument.partition("=")
        prefix = key[:1] if key[:1] in "+~" else ""
        key = key[len(prefix):]
        old = next((o for o in renamed if key == o or key.startswith(o + ".")), None) if sep else None
        if old is not None:
            if warn:
                where = f"{command}: " if command else ""
                warnings.warn(f"{where}{old}= is deprecated; use {renamed[old]}=", FutureWarning, stacklevel=2)
            argument = f"{prefix}{renamed[old]}{key[len(old):]}={value}"
        out.append(argument)
    return out


def upgrade_recorded(recorded: Mapping[str, Any], renamed: Mapping[str, str]) -> dict:
    """A config recorded by an older egohod (a nested plain mapping, e.g. a run folder's
    ``config.yaml``), with the settings renamed since (``renamed``: old dotted key -> new) under
    their new names, so it compares with a config composed today. A copy; a setting recorded under
    both names keeps the new one."""
    import copy

    out = copy.deepcopy(dict(recorded))
    for old, new in renamed.items():
        *old_path, old_key = old.split(".")
        *new_path, new_key = new.split(".")
        node = out
        for part in old_path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_key not in node:
            continue
        value = node.pop(old_key)
        target = out
        for part in new_path:
            target = target.setdefault(part, {})
        target.setdefault(new_key, value)
    return out


def _check_missing(cfg, known: Sequence[str], command: str) -> None:
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        where = f" for `{command}`" if command else ""
        raise ConfigError(f"missing mandatory value: {', '.join(missing)}{where}; pass "
                          + " ".join(f"{k}=..." for k in missing), known)


def load_config(schema: type, overrides: Sequence[str] = (), *, config: str | None = None,
                layers: Sequence[Mapping[str, Any] | Path] = (), command: str = "",
                renamed: Mapping[str, str] | None = None) -> Any:
    """``schema`` defaults < ``configs/<config>.yaml`` < ``layers`` (mappings or YAML files, in order) < ``overrides``
    (``key=value`` strings in Hydra's override grammar) -> an instance of the dataclass ``schema``.

    ``command`` names the command in error messages. ``renamed`` maps old key names a command
    still accepts to their new names (a FutureWarning says which to use). Raises
    :class:`ConfigError`. (No Hydra global state: the config groups of ``configs/`` do not
    capture keys such as ``encoder=``.)"""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    known = _schema_keys(schema)
    if renamed:
        overrides = rename_arguments(overrides, renamed, command)
    parsed = _parse_overrides(overrides, known, schema.__name__)
    try:
        cfg = OmegaConf.structured(schema)
        if config is not None:
            file_layer = OmegaConf.load(config_file(config))
            if "defaults" in file_layer:
                raise ConfigError(f"{config_file(config)} has a Hydra defaults list; load it with compose()", known)
            cfg = OmegaConf.merge(cfg, file_layer)
        for layer in layers:
            cfg = OmegaConf.merge(cfg, OmegaConf.load(layer) if isinstance(layer, Path) else OmegaConf.create(dict(layer)))
        for o in parsed:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
    except (OmegaConfBaseException, ValueError, TypeError, yaml.YAMLError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e), known) from None
    _check_missing(cfg, known, command)
    try:
        return OmegaConf.to_object(cfg)
    except Exception as e:  # noqa: BLE001 - omegaconf's errors name the key
        raise ConfigError(str(e), known) from None


def compose(group: str, config: str, overrides: Sequence[str] = (), *, command: str = "",
            check_missing: bool = True):
    """``configs/<group>/<config>.yaml`` composed by Hydra with ``overrides``: a ``DictConfig``.
    For configs that pick components through Hydra config groups (``configs/hod``:
    ``detector=100doh``); the YAML names its schema in its defaults list (register the schemas in
    Hydra's ``ConfigStore`` first). ``$EGOHOD_CONFIGS`` moves the root. ``check_missing=False``
    leaves required (``???``) values to the caller. Raises :class:`ConfigError`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    folder = config_file(f"{group}/{config}").parent
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
            cfg = hydra_compose(config_name=config, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        cause = f": {e.__cause__}" if e.__cause__ is not None else ""
        raise ConfigError(f"{e}{cause}") from None
    finally:
        GlobalHydra.instance().clear()
    if check_missing:
        _check_missing(cfg, (), command)
    return cfg


# Field metadata of settings that only change how work is carried out (transport, batching,
# caching, devices, progress), never a result: a run folder's recorded settings may differ in
# them between a run and its resumption.
TRANSPORT = {"transport": True}


def transport(default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field marked as transport-only (see :data:`TRANSPORT`)."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=TRANSPORT)
    return dataclasses.field(default=default, metadata=TRANSPORT)


def transport_fields(schema: type) -> set[str]:
    """Names of the fields of dataclass ``schema`` marked with :func:`transport`."""
    return {f.name for f in dataclasses.fields(schema) if f.metadata.get("transport")}


def _is_tuple(tp: Any) -> bool:
    """Tuple-typed ``Options`` fields (hashable defaults of frozen options) are lists in a config,
    as config files and ``key=[a,b]`` overrides write them."""
    import typing

    return tp is tuple or typing.get_origin(tp) is tuple


@functools.cache
def options_schema(name: str, options: type) -> type:
    """The config schema of a component chosen by name (``detector: {name: skin, ...}``): ``name``
    (default ``name``) plus the fields of its ``Options`` dataclass, which stays the one place
    their defaults live. Field metadata (e.g. HOD's transport-only marks) is kept; tuple fields
    become lists (:func:`make_options` turns them back). One class per ``(name, options)``."""
    import typing

    if not dataclasses.is_dataclass(options):
        raise TypeError(f"{name}: Options must be a dataclass, got {options!r}")
    if "name" in {f.name for f in dataclasses.fields(options)}:
        raise TypeError(f"{name}: Options may not have a 'name' field (the schema adds it)")
    hints = typing.get_type_hints(options)
    fields: list[tuple] = [("name", str, dataclasses.field(default=name))]
    for f in dataclasses.fields(options):
        tp = typing.List[typing.Any] if _is_tuple(hints[f.name]) else hints[f.name]
        if f.default is not dataclasses.MISSING and isinstance(f.default, tuple):
            default = dataclasses.field(default_factory=lambda d=f.default: list(d), metadata=f.metadata)
        elif f.default is not dataclasses.MISSING:
            default = dataclasses.field(default=f.default, metadata=f.metadata)
        elif f.default_factory is not dataclasses.MISSING:
            default = dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
        else:
            default = dataclasses.field(metadata=f.metadata)
        fields.append((f.name, tp, default))
    schema = dataclasses.make_dataclass(f"{options.__qualname__.replace('.', '_')}_{name}_schema", fields)
    schema.__module__ = options.__module__
    return schema


def make_options(options: type, values: Mapping[str, Any] | None = None, *, what: str) -> Any:
    """An instance of the ``Options`` dataclass from ``values`` (a mapping, a ``DictConfig`` or one
    holding OmegaConf values, or None for the defaults); list values of tuple fields become tuples.
    An unknown key raises :class:`ConfigError` naming ``what`` (e.g. ``"detector 'skin'"``), the
    closest known key and all of them."""
    import difflib
    import typing

    from omegaconf import OmegaConf

    if OmegaConf.is_config(values):
        values = OmegaConf.to_container(values, resolve=True)
    values = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
              for k, v in (values or {}).items()}
    known = [f.name for f in dataclasses.fields(options)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{what}: unknown option(s) {unknown}{hint}; accepted options: {sorted(known)}", known)
    hints = typing.get_type_hints(options)
    for key, value in values.items():
        if _is_tuple(hints[key]) and isinstance(value, list):
            values[key] = tuple(value)
    return options(**values)


@contextmanager
def exit_on_config_error(prog: str) -> Iterator[None]:
    """For a command's entry point: a :class:`ConfigError` inside ends the process with
    ``prog: message`` on stderr and a non-zero exit status (library code raises, never exits)."""
    try:
        yield
    except ConfigError as e:
        raise SystemExit(f"{prog}: {e}") from None
