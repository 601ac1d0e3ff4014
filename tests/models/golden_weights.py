"""Deterministic weights for golden-value tests, generated from key names and shapes.

The golden files store only key names, shapes and reference outputs; the weights themselves
are regenerated here with numpy's legacy ``RandomState`` (stable across numpy versions), so the
files stay small. The same function produced the weights that were fed to the reference model.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import torch


def golden_tensor(key: str, shape, seed: int = 0) -> torch.Tensor:
    """A well-conditioned tensor for ``key``: norms/gammas near 1, weights ~N(0, 0.02-ish)."""
    rs = np.random.RandomState((zlib.crc32(key.encode()) + seed) % (2**32))
    shape = tuple(int(s) for s in shape)
    base = rs.standard_normal(shape).astype(np.float32)
    last = key.rsplit(".", 1)[-1]
    if key == "logit_scale":
        return torch.tensor(math.log(1 / 0.07), dtype=torch.float32)
    is_norm = any(t in key for t in ("ln_", "ln_final", "ln_pre", "ln_post", "LayerNorm", "norm"))
    if (is_norm and last == "weight") or last == "gamma":
        arr = 1.0 + 0.1 * base
    elif last == "bias" or "embedding" in key or key.endswith("_embed") or "cls_token" in key:
        arr = 0.05 * base
    else:
        fan_in = shape[-1] if len(shape) > 1 else shape[0]
        if key.endswith("projection"):  # used as x @ P: fan-in is the first axis
            fan_in = shape[0]
        elif len(shape) > 2:
            fan_in = int(np.prod(shape[1:]))
        arr = base / math.sqrt(fan_in)
    return torch.from_numpy(np.ascontiguousarray(arr))


def golden_state_dict(shapes: dict, seed: int = 0) -> dict:
    return {k: golden_tensor(k, s, seed) for k, s in shapes.items()}


def golden_input(shape, seed: int) -> torch.Tensor:
    rs = np.random.RandomState(seed)
    return torch.from_numpy(rs.standard_normal(tuple(shape)).astype(np.float32))
