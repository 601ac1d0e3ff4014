"""Reading official and egohod checkpoints safely and loading them strictly.

Accepted files:

* ``torch.save`` pickles: ``{'epoch', 'state_dict': {...}, ...}`` (the official release, keys
  prefixed ``module.``), ``{'model': {...}}``, or a bare state dict. They are read by
  :func:`egohod.safe_load.load_torch`, whose allowlist holds exactly the extra objects the
  official files pickle (OmegaConf containers and nodes, ``typing.Any``, numpy
  scalars/dtypes/arrays). Nothing else is unpickled unless the caller passes
  ``trust_pickle=True``.
* ``.safetensors`` files (``egohod export ... format=safetensors``).

Key layouts: ``module.`` prefixes are stripped; the flash-attention names of the vision blocks
(``attn.Wqkv.*``, ``mlp.fc1.*``, ``mlp.fc2.*``) become the plain ones (``attn.in_proj_*``,
``mlp.c_fc.*``, ``mlp.c_proj.*``); a 4-D ``visual.conv1.weight`` (Conv2d layout) is flattened to
the Linear layout. Keys of upstream modules that never run (``adapter_2.*`` and
``adapter.conv2d.*`` in every block) are accepted and dropped. Any other missing or unexpected
key, or any shape mismatch, raises :class:`CheckpointError` naming the file, the keys, the
expected and the found shapes.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

from ..safe_load import CorruptFileError, UnsafeFileError, load_torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not match the model."""


# Keys of upstream modules that exist in the official files but take no part in any forward.
UNUSED_UPSTREAM_KEYS = (
    re.compile(r"^visual\.transformer\.resblocks\.\d+\.adapter_2\..+$"),
    re.compile(r"^visual\.transformer\.resblocks\.\d+\.adapter\.conv2d\.(weight|bias)$"),
)

_FLASH_TO_PLAIN = (
    (re.compile(r"^(visual\.transformer\.resblocks\.\d+\.)attn\.Wqkv\.weight$"), r"\1attn.in_proj_weight"),
    (re.compile(r"^(visual\.transformer\.resblocks\.\d+\.)attn\.Wqkv\.bias$"), r"\1attn.in_proj_bias"),
    (re.compile(r"^(visual\.transformer\.resblocks\.\d+\.)mlp\.fc1\.(weight|bias)$"), r"\1mlp.c_fc.\2"),
    (re.compile(r"^(visual\.transformer\.resblocks\.\d+\.)mlp\.fc2\.(weight|bias)$"), r"\1mlp.c_proj.\2"),
)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (identifies the weights an encoder was loaded from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class UnsafeCheckpointError(CheckpointError, UnsafeFileError):
    """A checkpoint that would run code while loading (refused unless ``trust_pickle=True``)."""


class CorruptCheckpointError(CheckpointError, CorruptFileError):
    """A checkpoint file that is empty, cut off or not a checkpoint."""


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict with ``module.`` prefixes removed.

    ``trust_pickle=True`` allows arbitrary unpickling (only for files you trust).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return strip_prefixes(load_file(str(path)))
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {e}") from e
    return strip_prefixes(unwrap_state_dict(load_checkpoint_object(path, trust_pickle), path))


def load_checkpoint_object(path: str | Path, trust_pickle: bool = False, what: str = "checkpoint"):
    """The object a ``torch.save`` checkpoint holds, read through :func:`egohod.safe_load.load_torch`;
    its refusals and corruption errors are raised as :class:`CheckpointError` subclasses."""
    try:
        return load_torch(path, trust_pickle=trust_pickle, what=what)
    except UnsafeFileError as e:
        raise UnsafeCheckpointError(e.path, e.what, e.wanted) from None
    except CorruptFileError as e:
        raise CorruptCheckpointError(e.path, e.what, e.reason) from None


def unwrap_state_dict(obj, path: str | Path = "<memory>") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint object (``state_dict``/``model`` wrappers or bare)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict of tensors")
    for key in ("state_dict", "model", "module"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: entries that are not tensors: {bad[:10]} "
                              "(expected a state dict, or a dict with a 'state_dict' entry)")
    return dict(obj)


def strip_prefixes(sd: Mapping[str, torch.Tensor], prefixes: Iterable[str] = ("module.", "_orig_mod.")) -> dict:
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def to_plain_layout(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Flash-attention vision key names -> plain names; Conv2d patch weight -> Linear layout."""
    out = {}
    for k, v in sd.items():
        for pat, rep in _FLASH_TO_PLAIN:
            if pat.match(k):
                k = pat.sub(rep, k)
                break
        if k == "visual.conv1.weight" and v.dim() == 4:
            v = v.flatten(1)  # [D, 3, p, p] -> [D, 3*p*p] in (channel, row, col) order
        if k in out:
            raise CheckpointError(f"key {k!r} appears in both the flash-attention and the plain layout")
        out[k] = v
    return out


def is_unused_upstream_key(key: str) -> bool:
    return any(p.match(key) for p in UNUSED_UPSTREAM_KEYS)


def _fmt(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "<state dict>",
                           variant: str = "model", allow_missing: Iterable[str] = (),
                           resize: Mapping[str, callable] | None = None) -> dict:
    """Copy ``sd`` into ``model``; every key must match in name and shape.

    ``allow_missing``: names that may be absent (they keep their initial values).
    ``resize``: ``{key: fn(tensor, expected_shape) -> tensor}`` for keys whose size may
    legitimately differ (e.g. the temporal embedding for another frame count).
    Returns ``{"dropped": [...], "missing_allowed": [...]}``.
    """
    own = model.state_dict()
    sd = to_plain_layout(sd)
    dropped = sorted(k for k in sd if k not in own and is_unused_upstream_key(k))
    unexpected = sorted(k for k in sd if k not in own and not is_unused_upstream_key(k))
    allow = set(allow_missing)
    missing = sorted(k for k in own if k not in sd and k not in allow)
    if missing or unexpected:
        parts = [f"checkpoint {source} does not match {variant}:"]
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_fmt(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_fmt(unexpected)}")
        hint = guess_variant_hint(sd, variant)
        if hint:
            parts.append(hint)
        raise CheckpointError("\n  ".join(parts))
    resize = dict(resize or {})
    loaded = {}
    mismatched = []
    for k, v in sd.items():
        if k not in own:
            continue
        exp = own[k].shape
        if v.shape != exp and k in resize:
            v = resize[k](v, exp)
        if v.shape != exp:
            mismatched.append(f"{k}: expected {tuple(exp)}, got {tuple(v.shape)}")
        loaded[k] = v
    if mismatched:
        hint = guess_variant_hint(sd, variant)
        raise CheckpointError(f"checkpoint {source} does not match {variant}: {len(mismatched)} shape "
                              f"mismatch(es):\n  " + "\n  ".join(mismatched[:12])
                              + (f"\n  ... ({len(mismatched) - 12} more)" if len(mismatched) > 12 else "")
                              + (f"\n  {hint}" if hint else ""))
    model.load_state_dict(loaded, strict=False)
    return {"dropped": dropped, "missing_allowed": sorted(k for k in own if k not in sd)}


# conv1 weight shape -> variant: a cheap way to say "this is an L checkpoint"
_SIGNATURES = {(768, 768): "egovideo_b", (1024, 588): "egovideo_l", (64, 768): "egovideo_tiny"}


def guess_variant_hint(sd: Mapping[str, torch.Tensor], variant: str) -> str:
    w = sd.get("visual.conv1.weight")
    if w is None:
        if "visual.patch_embed.proj.weight" in sd:
            guess = "egovideo_g"
        else:
            return ""
    else:
        guess = _SIGNATURES.get(tuple(w.shape[:2]) if w.dim() == 2 else (w.shape[0], w[0].numel()))
    if guess and guess != variant:
        return f"hint: this looks like a checkpoint of {guess}, not {variant}"
    return ""
