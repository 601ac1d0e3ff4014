"""The checkpoint format: writing egohod checkpoints and reading them (and the official ones)
safely, with what the file says about itself, and loading them strictly.

An egohod ``.pt`` checkpoint (:func:`checkpoint_payload`, written by :func:`write_checkpoint` or
by ``pretrain/``'s atomic checkpoint folders) is the official EgoVideo layout plus metadata::

    {'state_dict': {'module.<key>': tensor, ...}, 'model_name': 'egovideo_b', 'input_spec': {...},
     'model_config': {...}, 'step': ..., 'epoch': ..., 'format': ..., 'config': {...}}

A ``.safetensors`` file holds the bare tensors (no prefix) and the metadata as strings (non-string
values JSON-encoded); ``egohod export ... format=safetensors`` names its encoder under
``encoder`` (with ``egohod_format: frozen_encoder``).

:func:`read_checkpoint_with_meta` returns ``(state_dict, meta)``; :func:`checkpoint_model_name`
says which registered model a file holds (``None`` for files that do not say: the official
releases, bare state dicts); :func:`resolve_model_name` checks it against the name a caller gave,
so ``create_model(checkpoint=PATH)`` / ``load_encoder(checkpoint=PATH)`` need no name for files
that name their model, and a name that disagrees with the file is an error naming both.

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
import io
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

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

# the entry of a torch checkpoint that holds the tensors (first one present wins)
STATE_DICT_KEYS = ("state_dict", "model", "module")
# the prefix an egohod .pt file puts on every key (the official release's DDP layout)
WRITE_PREFIX = "module."


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


# ----------------------------------------------------------------------------- writing

def checkpoint_payload(state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict:
    """The object an egohod ``.pt`` checkpoint holds: ``{'state_dict': {'module.<key>': tensor},
    **meta}``. ``meta`` says what the file is (``model_name``, ``input_spec``, ``model_config``,
    ``step``, ...); it may not use the key ``state_dict``."""
    meta = dict(meta)
    if "state_dict" in meta:
        raise ValueError("checkpoint meta may not have a 'state_dict' entry (that is where the tensors go)")
    name = meta.get("model_name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"checkpoint meta 'model_name' must be a str, got {type(name).__name__}")
    return {"state_dict": {WRITE_PREFIX + k: v for k, v in state_dict.items()}, **meta}


def write_checkpoint(path: str | Path, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write a self-describing checkpoint atomically (:func:`egohod.fileio.atomic_write_bytes`).

    ``.safetensors``: the tensors as they are and ``meta`` as the file's string metadata
    (non-string values JSON-encoded); any other suffix: ``torch.save`` of
    :func:`checkpoint_payload`. Read back with :func:`read_checkpoint_with_meta`.
    """
    from ..fileio import atomic_write_bytes

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        data = save({k: v.detach().contiguous() for k, v in state_dict.items()},
                    metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    else:
        buf = io.BytesIO()
        torch.save(checkpoint_payload(state_dict, meta), buf)
        data = buf.getvalue()
    return atomic_write_bytes(path, data)


# ----------------------------------------------------------------------------- reading

def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict with ``module.`` prefixes removed.

    ``trust_pickle=True`` allows arbitrary unpickling (only for files you trust).
    """
    return read_checkpoint_with_meta(path, trust_pickle)[0]


def read_checkpoint_with_meta(path: str | Path, trust_pickle: bool = False, *,
                              data: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a checkpoint file: the tensors as :func:`read_checkpoint` returns
    them and every other top-level entry of the file (``{}`` for a bare state dict; the string
    metadata of a ``.safetensors`` file).

    ``data=False``: the tensors are on the ``meta`` device (names, shapes and dtypes only; their
    bytes are not read), which is cheap even for a multi-GB file.
    """
    path = _existing(path)
    if path.suffix == ".safetensors":
        sd, meta = _read_safetensors(path, data)
        return strip_prefixes(sd), meta
    obj = load_checkpoint_object(path, trust_pickle, map_location="cpu" if data else "meta")
    sd, meta = split_checkpoint(obj, path)
    return strip_prefixes(sd), meta


def read_checkpoint_meta(path: str | Path, trust_pickle: bool = False) -> dict[str, Any]:
    """What a checkpoint file says about itself, without reading its tensors' data.

    Lenient about the layout: files of any other kind (a bare state dict, a baseline's own
    layout) give ``{}``; unreadable or unsafe files raise as :func:`read_checkpoint` does.
    """
    path = _existing(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                return dict(f.metadata() or {})
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {e}") from e
    obj = load_checkpoint_object(path, trust_pickle, map_location="meta")
    key = _state_dict_key(obj)
    return {k: v for k, v in obj.items() if k != key} if key is not None else {}


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    return path


def _read_safetensors(path: Path, data: bool) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            if data:
                sd = {k: f.get_tensor(k) for k in f.keys()}
            else:
                sd = {}
                for k in f.keys():
                    s = f.get_slice(k)
                    sd[k] = torch.empty(s.get_shape(), dtype=_ST_DTYPES.get(s.get_dtype(), torch.float32),
                                        device="meta")
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read safetensors checkpoint {path}: {e}") from e
    return sd, meta


_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


def load_checkpoint_object(path: str | Path, trust_pickle: bool = False, what: str = "checkpoint",
                           map_location: Any = "cpu"):
    """The object a ``torch.save`` checkpoint holds, read through :func:`egohod.safe_load.load_torch`;
    its refusals and corruption errors are raised as :class:`CheckpointError` subclasses.
    ``map_location="meta"`` reads no tensor data (shapes only)."""
    try:
        return load_torch(path, trust_pickle=trust_pickle, what=what, map_location=map_location)
    except UnsafeFileError as e:
        raise UnsafeCheckpointError(e.path, e.what, e.wanted) from None
    except CorruptFileError as e:
        raise CorruptCheckpointError(e.path, e.what, e.reason) from None


def _state_dict_key(obj) -> str | None:
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return key
    return None


def split_checkpoint(obj, path: str | Path = "<memory>") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a checkpoint object: the inverse of :func:`checkpoint_payload`
    (one ``module.`` prefix removed from every key). The tensors are the ``state_dict`` /
    ``model`` / ``module`` entry, or the whole object for a bare state dict (then ``meta == {}``)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict of tensors")
    key = _state_dict_key(obj)
    sd, meta = (obj[key], {k: v for k, v in obj.items() if k != key}) if key is not None else (obj, {})
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: entries that are not tensors: {bad[:10]} "
                              "(expected a state dict, or a dict with a 'state_dict' entry)")
    return {k.removeprefix(WRITE_PREFIX): v for k, v in sd.items()}, meta


def unwrap_state_dict(obj, path: str | Path = "<memory>") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint object (``state_dict``/``model`` wrappers or bare)."""
    return split_checkpoint(obj, path)[0]


# ----------------------------------------------------------------------------- what the file holds

def checkpoint_model_name(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(key, name)``: the registered model a file's meta names and the entry that says so
    (``model_name``; ``encoder`` in an ``egohod export`` safetensors file), or ``None``."""
    candidates = [("model_name", meta.get("model_name"))]
    if meta.get("egohod_format") == "frozen_encoder":
        candidates.append(("encoder", meta.get("encoder")))
    for key, name in candidates:
        if isinstance(name, str) and name:
            return key, name
    return None


def resolve_model_name(name: str | None, checkpoint: str | Path | None, *, call: str, known: Iterable[str],
                       trust_pickle: bool = False) -> str:
    """The registered name to build for ``call(name, checkpoint=...)``.

    With a checkpoint that names a registered model (one of ``known``), ``name`` may be ``None``;
    a ``name`` that disagrees with the file raises :class:`CheckpointError` naming both. A file
    that does not say (the official releases), or names something egohod does not register (a
    third-party file's own label), needs ``name``; without one the error adds a guess from the
    tensor shapes.
    """
    if checkpoint is None:
        if name is None:
            raise TypeError(f"{call}() needs a name or a checkpoint= file that names its model")
        return name
    found = checkpoint_model_name(read_checkpoint_meta(checkpoint, trust_pickle))
    known = set(known)
    if found is not None and found[1] in known:
        key, file_name = found
        if name is not None and name != file_name:
            raise CheckpointError(f"checkpoint {checkpoint} holds {file_name!r} (its {key!r} entry), but {call}() "
                                  f"was asked for {name!r}: pass {file_name!r} or no name")
        return file_name
    if name is not None:
        return name
    if found is not None:
        raise CheckpointError(f"checkpoint {checkpoint} names {found[1]!r} (its {found[0]!r} entry), which {call}() "
                              f"does not know; pass one of: {', '.join(sorted(known))}")
    hint = _shape_hint(checkpoint, trust_pickle)
    raise CheckpointError(
        f"checkpoint {checkpoint} does not say which model it holds (no 'model_name' entry, as in the official "
        f"EgoVideo releases): pass the name, e.g. {call}('egovideo_b', checkpoint=...)" + (f"; {hint}" if hint else ""))


def _shape_hint(checkpoint: str | Path, trust_pickle: bool) -> str:
    try:
        sd, _ = read_checkpoint_with_meta(checkpoint, trust_pickle, data=False)
    except CheckpointError:  # another layout (a baseline's own file): no guess
        return ""
    guess = guess_variant(to_plain_layout(sd))
    return f"this looks like a checkpoint of {guess}" if guess else ""


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
_SIGNATURES = {(768, 768): "egovideo_b", (1024, 588): "egovideo_l", (64, 768): "egovideo_tiny",
               (192, 768): "egovideo_small"}


def guess_variant(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The variant a state dict's patch embedding looks like (a guess from shapes), or ``None``."""
    w = sd.get("visual.conv1.weight")
    if w is None:
        return "egovideo_g" if "visual.patch_embed.proj.weight" in sd else None
    return _SIGNATURES.get(tuple(w.shape[:2]) if w.dim() == 2 else (w.shape[0], w[0].numel()))


def guess_variant_hint(sd: Mapping[str, torch.Tensor], variant: str) -> str:
    """A hint for a mismatch with a file that does not name its model (the guess is never used
    when the file says what it holds: :func:`resolve_model_name`)."""
    guess = guess_variant(sd)
    if guess and guess != variant:
        return f"hint: this looks like a checkpoint of {guess}, not {variant}"
    return ""
