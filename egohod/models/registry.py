"""Registries for full models (``create_model``) and frozen encoders (``load_encoder``).

One small builder function per variant, registered by name with a decorator::

    @register_model(spec=InputSpec(224, 4, 512))
    def egovideo_b(**kwargs) -> nn.Module: ...

    @register_encoder(spec=InputSpec(224, 1, 2048, mean=IMAGENET_MEAN, std=IMAGENET_STD))
    def r3m(checkpoint=None, num_frames=None) -> nn.Module: ...

Both tables are :class:`egohod.registry.Registry` instances (``MODELS``, ``ENCODERS``; the input
spec is each entry's ``meta["spec"]``); the built-in variants and baselines are imported on the
first look-up. Builders import heavy optional dependencies inside their body, so importing the
registry stays cheap and side-effect free.

Random weights are a function of ``(name, seed)``: :func:`create_model` and :func:`load_encoder`
run the builder under :func:`seeded_init` (a forked torch RNG seeded with ``seed``, default 0),
so two calls with the same seed give identical weights and the caller's global RNG state is
left as it was. A model without a checkpoint reports ``.weights == "random:seed=<seed>"``
(:func:`random_weights_id`); with a checkpoint, ``.weights`` is the file's sha256 (the seed then
only decides the few parameters a checkpoint may leave at their initialisation).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..registry import Registry
from .checkpoint_io import resolve_model_name
from .spec import InputSpec


# the variants register models and encoders, the baselines encoders (absent in a partial install)
_BUILTINS = {"builtins": (f"{__package__}.variants",), "optional_builtins": (f"{__package__}.baselines",)}
MODELS = Registry("model", **_BUILTINS)
ENCODERS = Registry("encoder", **_BUILTINS)


def register_model(*, spec: InputSpec, name: str | None = None):
    """Register a full-model builder ``fn(**kwargs) -> nn.Module`` under ``name`` (default: fn name)."""
    return MODELS.register(name, spec=spec)


def register_encoder(*, spec: InputSpec, name: str | None = None):
    """Register a frozen-encoder builder ``fn(checkpoint=None, num_frames=None) -> nn.Module``."""
    return ENCODERS.register(name, spec=spec)


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered full models (vision + text), filtered by a glob pattern."""
    return MODELS.list(pattern)


def list_encoders(pattern: str = "*") -> list[str]:
    """Names of registered frozen encoders (EgoVideo variants and baselines)."""
    return ENCODERS.list(pattern)


def get_input_spec(name: str) -> InputSpec:
    """Input spec of a registered model or encoder."""
    return (MODELS if name in MODELS else ENCODERS).entry(name).meta["spec"]


RANDOM_PREFIX = "random"


def random_weights_id(seed: int) -> str:
    """The ``.weights`` of a model built without a checkpoint: ``"random:seed=<seed>"``."""
    return f"{RANDOM_PREFIX}:seed={int(seed)}"


def is_random_weights(weights: str | None) -> bool:
    """True for ``"random:seed=N"`` (and the unseeded ``"random"`` of older records)."""
    return isinstance(weights, str) and (weights == RANDOM_PREFIX or weights.startswith(RANDOM_PREFIX + ":"))


def random_weights_seed(weights: str | None) -> int | None:
    """The seed in ``"random:seed=N"``; ``None`` for a checkpoint hash or an unseeded record."""
    if not is_random_weights(weights) or not weights.startswith(RANDOM_PREFIX + ":seed="):
        return None
    return int(weights.split("=", 1)[1])


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Run the body with torch's CPU RNG seeded with ``seed``; the caller's RNG state is restored
    afterwards (``torch.random.fork_rng``). Models are built on the CPU, so CUDA RNGs are not
    forked."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _label(model: nn.Module, seed: int) -> nn.Module:
    if getattr(model, "weights", None) == RANDOM_PREFIX:
        model.weights = random_weights_id(seed)
    return model


def create_model(name: str | None = None, checkpoint: str | Path | None = None, *, seed: int = 0,
                 **kwargs) -> nn.Module:
    """Build a registered model; with ``checkpoint``, load its weights strictly.

    ``name`` may be left out when the checkpoint names its model (``pretrain/`` checkpoints,
    ``egohod export`` safetensors files); a name that disagrees with the file is a
    :class:`~egohod.models.checkpoint_io.CheckpointError` naming both. Official release files do
    not name their model: pass the name.

    Initial weights are drawn under :func:`seeded_init` (``seed``, default 0): the same
    ``(name, seed)`` gives the same random weights, and the global RNG is untouched. Without a
    checkpoint, ``.weights == "random:seed=<seed>"``. The returned module is in train mode on
    the CPU, as ``nn.Module`` constructors leave it.
    """
    name = resolve_model_name(name, checkpoint, call="create_model", known=list_models(),
                              trust_pickle=bool(kwargs.get("trust_pickle", False)))
    builder = MODELS.get(name)
    with seeded_init(seed):
        model = builder(checkpoint=checkpoint, **kwargs)
    return _label(model, seed)


def load_encoder(name: str | None = None, checkpoint: str | Path | None = None, num_frames: int | None = None, *,
                 seed: int = 0) -> nn.Module:
    """A frozen, eval-mode encoder: uint8 frames ``[B, T, H, W, 3]`` or ``[B, H, W, 3]`` in,
    ``[B, embed_dim]`` float features out. It resizes, crops and normalises by itself and has
    ``.embed_dim``, ``.num_frames`` and ``.input_spec``. ``checkpoint=None`` means random
    weights drawn with ``seed`` (default 0; ``.weights == "random:seed=<seed>"``): a function of
    ``(name, seed)``, identical on every call, without touching the global RNG.

    ``name`` may be left out when the checkpoint names its model (as :func:`create_model`). An
    EgoVideo encoder is built from its vision tower alone (no text tower, no BERT-large for G) and
    reads only the checkpoint's ``visual.*`` keys, strictly."""
    name = resolve_model_name(name, checkpoint, call="load_encoder", known=list_encoders())
    builder = ENCODERS.get(name)
    with seeded_init(seed):
        enc = builder(checkpoint=checkpoint, num_frames=num_frames)
    _label(enc, seed)
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc
