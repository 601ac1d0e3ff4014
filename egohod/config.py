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

Overrides use Hydra's grammar (``a.b=1``, ``xs=[1,2]``, ``x=null``, quote values holding
``{}`` or spaces: ``templates=['a video of {}']``). An argument that is not ``key=value``, an
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
config groups (``egohod hod``: ``detector=100doh``); :func:`load_config` is for everything else.
Composition uses Hydra's global state, so do not call these from inside an ``@hydra.main`` app or
from several threads at once.
"""
from __future__ import annotations

import dataclasses
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

__all__ = ["ConfigError", "config_root", "config_file", "load_config", "compose", "exit_on_config_error"]

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


def _check_arguments(argv: Sequence[str], known: list[str], schema_name: str) -> None:
    for a in argv:
        if "=" not in a:
            raise ConfigError(f"arguments are key=value; got {a!r} (known keys: {', '.join(known)})", known, argument=a)
        key = a.split("=", 1)[0].lstrip("+~").split(".", 1)[0].split("[", 1)[0]
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Key {key!r} not in {schema_name!r}{hint} (known keys: {', '.join(known)})", known)


def _hydra_compose(config_name: str, overrides: Sequence[str], known: Sequence[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_root()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        cause = f": {e.__cause__}" if e.__cause__ is not None else ""
        raise ConfigError(f"{e}{cause}", known) from None
    finally:
        GlobalHydra.instance().clear()


def _check_missing(cfg, known: Sequence[str], command: str) -> None:
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        where = f" for `{command}`" if command else ""
        raise ConfigError(f"missing mandatory value: {', '.join(missing)}{where}; pass "
                          + " ".join(f"{k}=..." for k in missing), known)


def load_config(schema: type, overrides: Sequence[str] = (), *, config: str | None = None,
                layers: Sequence[Mapping[str, Any]] = (), command: str = "") -> Any:
    """``schema`` defaults < ``configs/<config>.yaml`` < ``layers`` (mappings, in order) < ``overrides``
    (``key=value`` strings) -> an instance of the dataclass ``schema``.

    ``command`` names the command in error messages. Raises :class:`ConfigError`."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    known = _schema_keys(schema)
    _check_arguments(overrides, known, schema.__name__)
    cs = ConfigStore.instance()
    schema_node = f"_egohod_schema_{schema.__module__}.{schema.__qualname__}".replace(".", "_")
    cs.store(name=schema_node, node=schema)
    defaults: list[Any] = [schema_node]
    if config is not None:
        config_file(config)  # a clear error when it is absent
        defaults.append(f"{config}@_here_")
    for i, layer in enumerate(layers):
        cs.store(name=f"_egohod_layer_{i}", node=dict(layer))
        defaults.append(f"_egohod_layer_{i}")
    cs.store(name="_egohod_primary", node={"defaults": [*defaults, "_self_"]})
    cfg = _hydra_compose("_egohod_primary", overrides, known)
    _check_missing(cfg, known, command)
    try:
        return OmegaConf.to_object(cfg)
    except Exception as e:  # noqa: BLE001 - omegaconf's errors name the key
        raise ConfigError(str(e), known) from None


def compose(config: str, overrides: Sequence[str] = (), *, command: str = ""):
    """``configs/<config>.yaml`` composed with Hydra ``overrides``: a ``DictConfig``. The YAML names
    its schema in its defaults list (register the schema in Hydra's ``ConfigStore`` first).
    Raises :class:`ConfigError`."""
    config_file(config)
    cfg = _hydra_compose(config, overrides, ())
    _check_missing(cfg, (), command)
    return cfg


@contextmanager
def exit_on_config_error(prog: str) -> Iterator[None]:
    """For a command's entry point: a :class:`ConfigError` inside ends the process with
    ``prog: message`` on stderr and a non-zero exit status (library code raises, never exits)."""
    try:
        yield
    except ConfigError as e:
        raise SystemExit(f"{prog}: {e}") from None
