"""Registries for full models (``create_model``) and frozen encoders (``load_encoder``).

One small builder function per variant, registered by name with a decorator::

    @register_model(spec=InputSpec(224, 4, 512))
    def egovideo_b(**kwargs) -> nn.Module: ...

    @register_encoder(spec=InputSpec(224, 1, 2048, mean=IMAGENET_MEAN, std=IMAGENET_STD))
    def r3m(checkpoint=None, num_frames=None) -> nn.Module: ...

Builders import heavy optional dependencies inside their body, so importing the registry
stays cheap and side-effect free.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from .spec import InputSpec


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., nn.Module]
    spec: InputSpec
    description: str


_MODELS: dict[str, Entry] = {}
_ENCODERS: dict[str, Entry] = {}


def _register(table: dict[str, Entry], kind: str, spec: InputSpec, name: str | None):
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in table:
            raise ValueError(f"{kind} {key!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        table[key] = Entry(key, fn, spec, doc[0] if doc else "")
        return fn

    return deco


def register_model(*, spec: InputSpec, name: str | None = None):
    """Register a full-model builder ``fn(**kwargs) -> nn.Module`` under ``name`` (default: fn name)."""
    return _register(_MODELS, "model", spec, name)


def register_encoder(*, spec: InputSpec, name: str | None = None):
    """Register a frozen-encoder builder ``fn(checkpoint=None, num_frames=None) -> nn.Module``."""
    return _register(_ENCODERS, "encoder", spec, name)


def _ensure_builtin() -> None:
    # Importing the variant modules fills the tables; done lazily so `import egohod` is cheap.
    from . import variants  # noqa: F401

    try:
        from . import baselines  # noqa: F401
    except ModuleNotFoundError as e:  # baselines may be absent in a partial install
        if e.name != f"{__package__}.baselines":
            raise


def _lookup(table: dict[str, Entry], kind: str, name: str) -> Entry:
    _ensure_builtin()
    if name not in table:
        known = ", ".join(sorted(table)) or "(none)"
        raise KeyError(f"unknown {kind} {name!r}; registered {kind}s: {known}")
    return table[name]


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered full models (vision + text), filtered by a glob pattern."""
    _ensure_builtin()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def list_encoders(pattern: str = "*") -> list[str]:
    """Names of registered frozen encoders (EgoVideo variants and baselines)."""
    _ensure_builtin()
    return sorted(n for n in _ENCODERS if fnmatch.fnmatch(n, pattern))


def get_input_spec(name: str) -> InputSpec:
    """Input spec of a registered model or encoder."""
    _ensure_builtin()
    if name in _MODELS:
        return _MODELS[name].spec
    return _lookup(_ENCODERS, "encoder", name).spec


def create_model(name: str, checkpoint: str | Path | None = None, **kwargs) -> nn.Module:
    """Build a registered model; with ``checkpoint``, load its weights strictly.

    The returned module is in train mode on the CPU, as ``nn.Module`` constructors leave it.
    """
    entry = _lookup(_MODELS, "model", name)
    return entry.builder(checkpoint=checkpoint, **kwargs)


def load_encoder(name: str, checkpoint: str | Path | None = None, num_frames: int | None = None) -> nn.Module:
    """A frozen, eval-mode encoder: uint8 frames ``[B, T, H, W, 3]`` or ``[B, H, W, 3]`` in,
    ``[B, embed_dim]`` float features out. It resizes, crops and normalises by itself and has
    ``.embed_dim``, ``.num_frames`` and ``.input_spec``. ``checkpoint=None`` means random
    weights (``.weights == "random"``)."""
    entry = _lookup(_ENCODERS, "encoder", name)
    enc = entry.builder(checkpoint=checkpoint, num_frames=num_frames)
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc
