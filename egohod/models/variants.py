"""The registered EgoVideo variants: one builder per variant, for full models and frozen encoders.

==============  =========================================  ======  ======  =====
name            vision / text                              pixels  frames  embed
==============  =========================================  ======  ======  =====
egovideo_b      ViT-B/16 (768, 12L) / CLIP text 512, 12L     224      4     512
egovideo_l      ViT-L/14 (1024, 24L) / CLIP text 768, 12L    336      4     512
egovideo_g      InternVideo2-1B (1408, 40L) / BERT-large     224      4     512
egovideo_tiny   ViT 64-wide, 2L, patch 16 / text 64, 2L       32      4      32
egovideo_small  ViT 192-wide, 6L, patch 16 / text 256, 4L    112      4     256
==============  =========================================  ======  ======  =====

``egovideo_small`` is this project's own size, with **no official weights**: the same family as
B (joint space-time ViT, Linear patch embedding, motion adapter, dual path with
``slowfast_projection``, CLIP text tower and BPE tokenizer, context 77), made small enough to
pretrain on a CPU (``configs/pretrain/small_kitchen.yaml``). Its weights come only from
``pretrain/train.py`` checkpoints; without one it is random.

``create_model(name, checkpoint=None, num_frames=None, adapter=None, trust_pickle=False)``:

* ``num_frames``: build for another clip length; the checkpoint's ``temporal_embedding`` (G:
  ``pos_embed``) is linearly interpolated to it on load. ``None``: the checkpoint's own clip
  length (the variant's default without a checkpoint).
* ``adapter``: ``None`` follows the checkpoint (motion adapters + ``slowfast_projection`` are
  built iff the checkpoint has them; always built without a checkpoint); ``True`` builds them
  and, if the checkpoint has none (the released no-adapter weights), keeps their identity
  initialisation (listed in ``model.fresh_init_keys``); ``False`` never builds them (a
  checkpoint with adapter weights is then an error).

The returned model has ``.weights``: "random:seed=<seed>" (``create_model(..., seed=)``, default 0) or
the sha256 of the checkpoint file.
"""
from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .checkpoint_io import file_sha256, load_state_dict_strict, read_checkpoint
from .egovideo import EgoVideo, EgoVideoConfig, VideoVisionTransformer, interpolate_temporal_embedding
from .frozen import FrozenVideoEncoder
from .internvideo2 import EgoVideoG, EgoVideoGConfig, InternVideo2Vision, g_to_internal_layout
from .registry import register_encoder, register_model
from .spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec

B_CONFIG = EgoVideoConfig()
L_CONFIG = EgoVideoConfig(image_size=336, patch_size=14, vision_width=1024, vision_layers=24, vision_heads=16,
                          text_width=768, text_heads=12)
TINY_CONFIG = EgoVideoConfig(image_size=32, patch_size=16, vision_width=64, vision_layers=2, vision_heads=4,
                             text_width=64, text_layers=2, text_heads=4, embed_dim=32)

_RELEASE = "https://huggingface.co/Jazzcharles/EgoVideo"
B_SPEC = InputSpec(224, 4, 512, resize_size=224,
                   extra={"tokenizer": "clip_bpe", "weights": f"{_RELEASE} (base_best.pt)"})
L_SPEC = InputSpec(336, 4, 512, resize_size=336,
                   extra={"tokenizer": "clip_bpe", "weights": f"{_RELEASE} (large_best.pt)"})
TINY_SPEC = InputSpec(32, 4, 32, resize_size=32, extra={"tokenizer": "clip_bpe", "weights": "none (tests)"})
# this project's CPU-trainable size: 112 px (7x7 patches per frame), 4 + 16 frames, 256-d
SMALL_CONFIG = EgoVideoConfig(image_size=112, patch_size=16, vision_width=192, vision_layers=6, vision_heads=3,
                              text_width=256, text_layers=4, text_heads=4, embed_dim=256)
SMALL_SPEC = InputSpec(112, 4, 256, resize_size=112,
                       extra={"tokenizer": "clip_bpe",
                              "weights": "none official (egohod's own size: pretrain with pretrain/train.py)"})
G_CONFIG = EgoVideoGConfig()
G_SPEC = InputSpec(224, 4, 512, mean=IMAGENET_MEAN, std=IMAGENET_STD, resize_size=224,
                   extra={"tokenizer": "bert", "context_length": 40,
                          "weights": "OpenGVLab/EgoVideo release (ckpt_4frames.pth)"})

_ADAPTER_KEY = re.compile(r"^visual\.transformer\.resblocks\.\d+\.adapter\.(down_proj|up_proj|dwconv|conv|gamma)\b")


def checkpoint_has_adapter(sd: dict) -> bool:
    return "slowfast_projection" in sd or any(_ADAPTER_KEY.match(k) for k in sd)


def _checkpoint_frames(sd: dict | None) -> int | None:
    """The clip length an EgoVideo checkpoint was trained with (its temporal embedding), or None."""
    te = sd.get("visual.temporal_embedding") if sd is not None else None
    return int(te.shape[0]) if te is not None and te.dim() == 2 else None


def _g_checkpoint_frames(sd: dict | None, cfg: EgoVideoGConfig) -> int:
    """The clip length of a G checkpoint (its joint position embedding), else the config's."""
    pe = sd.get("visual.pos_embed") if sd is not None else None
    if pe is not None and pe.dim() == 3 and (pe.shape[1] - 1) % (cfg.grid ** 2) == 0:
        return (pe.shape[1] - 1) // cfg.grid ** 2
    return cfg.num_frames


def _resize_temporal(v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if v.dim() == 2 and v.shape[1] == shape[1]:
        return interpolate_temporal_embedding(v, shape[0])
    return v


class VisionOnlyCheckpointWarning(UserWarning):
    """A checkpoint without text tower was loaded into a full model (text weights stay random)."""


def _vision_only_allowance(model: nn.Module, sd: dict, source: str) -> list[str]:
    """A vision-only file (e.g. ``egohod export ... format=safetensors``) may lack the text tower."""
    if any(k.startswith("textual.") for k in sd) or not any(k.startswith("visual.") for k in sd):
        return []
    warnings.warn(f"{source} holds only the vision tower; {model.name}'s text tower keeps random weights",
                  VisionOnlyCheckpointWarning, stacklevel=4)
    return [k for k in model.state_dict() if k.startswith("textual.") or k in ("logit_scale", "slowfast_projection")]


def load_egovideo_checkpoint(model: EgoVideo, sd: dict, source: str) -> dict:
    """Strictly load a (normalised) state dict into an EgoVideo model; see module docstring."""
    own = model.state_dict()
    allow = _vision_only_allowance(model, sd, source)
    if model.visual.has_adapter and not checkpoint_has_adapter(sd):
        allow += [k for k in own if ".adapter." in k or k == "slowfast_projection"]
        warnings.warn(f"{source} has no motion-adapter weights; {model.name}'s adapters and slowfast_projection "
                      "keep their initialisation (adapters start as the identity)", stacklevel=3)
    return load_state_dict_strict(model, sd, source=source, variant=model.name, allow_missing=allow,
                                  resize={"visual.temporal_embedding": _resize_temporal})


def _resize_g_pos(v: torch.Tensor, shape: torch.Size, native_frames: int) -> torch.Tensor:
    """Linear interpolation of a G joint position embedding along time."""
    if v.dim() != 3 or v.shape[-1] != shape[-1] or (v.shape[1] - 1) % native_frames:
        return v
    d, hw = v.shape[-1], (v.shape[1] - 1) // native_frames
    t_new, rem = divmod(shape[1] - 1, hw)
    if rem:
        return v
    seq = v[0, 1:].view(native_frames, hw, d).permute(1, 2, 0)
    seq = torch.nn.functional.interpolate(seq, size=t_new, mode="linear", align_corners=False)
    return torch.cat([v[:, :1], seq.permute(2, 0, 1).reshape(1, t_new * hw, d)], dim=1)


def build_egovideo_g(name: str, cfg: EgoVideoGConfig, spec: InputSpec, checkpoint=None, num_frames=None,
                     trust_pickle: bool = False, adapter: bool | None = None, **overrides) -> EgoVideoG:
    if adapter:
        raise ValueError(f"{name} has no motion adapter (adapter=True is not available)")
    sd = read_checkpoint(checkpoint, trust_pickle=trust_pickle) if checkpoint is not None else None
    cfg = dataclasses.replace(cfg, **overrides)
    native = _g_checkpoint_frames(sd, cfg)
    cfg = dataclasses.replace(cfg, num_frames=num_frames or native)
    spec = dataclasses.replace(spec, num_frames=cfg.num_frames, embed_dim=cfg.embed_dim)
    model = EgoVideoG(cfg, spec, name=name)
    model.weights, model.fresh_init_keys = "random", []
    if sd is not None:
        sd, dropped = g_to_internal_layout(sd, cfg)
        allow = ["logit_scale"] + _vision_only_allowance(model, sd, str(checkpoint))
        info = load_state_dict_strict(model, sd, source=str(checkpoint), variant=name, allow_missing=allow,
                                      resize={"visual.pos_embed": lambda v, s: _resize_g_pos(v, s, native)})
        model.fresh_init_keys = info["missing_allowed"]
        model.weights = file_sha256(checkpoint)
    return model


def build_egovideo(name: str, cfg: EgoVideoConfig, spec: InputSpec, checkpoint: str | Path | None = None,
                   num_frames: int | None = None, adapter: bool | None = None, trust_pickle: bool = False,
                   **overrides) -> EgoVideo:
    sd = read_checkpoint(checkpoint, trust_pickle=trust_pickle) if checkpoint is not None else None
    if adapter is None:
        adapter = True if sd is None else checkpoint_has_adapter(sd)
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}")
    num_frames = num_frames or _checkpoint_frames(sd)
    cfg = dataclasses.replace(cfg, adapter=bool(adapter), num_frames=num_frames or cfg.num_frames, **overrides)
    spec = dataclasses.replace(spec, num_frames=cfg.num_frames, embed_dim=cfg.embed_dim)
    model = EgoVideo(cfg, spec, name=name)
    model.weights = "random"
    model.fresh_init_keys = []
    if sd is not None:
        info = load_egovideo_checkpoint(model, sd, source=str(checkpoint))
        model.fresh_init_keys = info["missing_allowed"]
        model.weights = file_sha256(checkpoint)
    return model


@register_model(spec=B_SPEC)
def egovideo_b(checkpoint=None, num_frames=None, **kw) -> nn.Module:
    """EgoVideo-B: ViT-B/16 at 224 px, CLIP text tower, 512-d."""
    return build_egovideo("egovideo_b", B_CONFIG, B_SPEC, checkpoint, num_frames, **kw)


@register_model(spec=L_SPEC)
def egovideo_l(checkpoint=None, num_frames=None, **kw) -> nn.Module:
    """EgoVideo-L: ViT-L/14 at 336 px, CLIP text tower (768 wide), 512-d."""
    return build_egovideo("egovideo_l", L_CONFIG, L_SPEC, checkpoint, num_frames, **kw)


@register_model(spec=TINY_SPEC)
def egovideo_tiny(checkpoint=None, num_frames=None, **kw) -> nn.Module:
    """EgoVideo-tiny: same family with tiny dims (32 px, 2 layers, 64 wide) for tests."""
    return build_egovideo("egovideo_tiny", TINY_CONFIG, TINY_SPEC, checkpoint, num_frames, **kw)


@register_model(spec=SMALL_SPEC)
def egovideo_small(checkpoint=None, num_frames=None, **kw) -> nn.Module:
    """EgoVideo-small: egohod's own CPU-trainable size (112 px, ViT 192x6, text 256x4, 256-d); no official weights."""
    return build_egovideo("egovideo_small", SMALL_CONFIG, SMALL_SPEC, checkpoint, num_frames, **kw)


@register_model(spec=G_SPEC)
def egovideo_g(checkpoint=None, num_frames=None, **kw) -> nn.Module:
    """EgoVideo-G: InternVideo2-1B vision tower (224 px, patch 14) + BERT-large text, 512-d."""
    return build_egovideo_g("egovideo_g", G_CONFIG, G_SPEC, checkpoint, num_frames, **kw)


def _visual_keys(sd: dict) -> dict:
    """The vision tower's entries of a state dict; adapter weights go too (a frozen encoder never runs
    the motion adapter, so it is built without one)."""
    return {k: v for k, v in sd.items() if k.startswith("visual.") and not _ADAPTER_KEY.match(k)}


def frozen_egovideo(name: str, cfg: EgoVideoConfig, spec: InputSpec, checkpoint=None,
                    num_frames=None) -> FrozenVideoEncoder:
    """A frozen encoder holding only the EgoVideo vision tower (no text tower is built); from a
    checkpoint only the ``visual.*`` keys are read, strictly (every key of the tower present and of
    the right shape; the temporal embedding is interpolated to ``num_frames``)."""
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}")
    sd = _visual_keys(read_checkpoint(checkpoint)) if checkpoint is not None else None
    cfg = dataclasses.replace(cfg, adapter=False, num_frames=num_frames or _checkpoint_frames(sd) or cfg.num_frames)
    spec = dataclasses.replace(spec, num_frames=cfg.num_frames, embed_dim=cfg.embed_dim)
    enc = FrozenVideoEncoder(VideoVisionTransformer(cfg), spec, name=name)
    if sd is not None:
        load_state_dict_strict(enc, sd, source=str(checkpoint), variant=name,
                               resize={"visual.temporal_embedding": _resize_temporal})
        enc.weights = file_sha256(checkpoint)
    return enc


def frozen_egovideo_g(name: str, cfg: EgoVideoGConfig, spec: InputSpec, checkpoint=None,
                      num_frames=None) -> FrozenVideoEncoder:
    """:func:`frozen_egovideo` for G: the InternVideo2 vision tower alone (no BERT-large)."""
    sd = _visual_keys(g_to_internal_layout(read_checkpoint(checkpoint), cfg)[0]) if checkpoint is not None else None
    native = _g_checkpoint_frames(sd, cfg)
    cfg = dataclasses.replace(cfg, num_frames=num_frames or native)
    spec = dataclasses.replace(spec, num_frames=cfg.num_frames, embed_dim=cfg.embed_dim)
    enc = FrozenVideoEncoder(InternVideo2Vision(cfg), spec, name=name)
    if sd is not None:
        load_state_dict_strict(enc, sd, source=str(checkpoint), variant=name,
                               resize={"visual.pos_embed": lambda v, s: _resize_g_pos(v, s, native)})
        enc.weights = file_sha256(checkpoint)
    return enc


@register_encoder(spec=B_SPEC, name="egovideo_b")
def _egovideo_b_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-B vision tower, frozen (uint8 frames in, 512-d out)."""
    return frozen_egovideo("egovideo_b", B_CONFIG, B_SPEC, checkpoint, num_frames)


@register_encoder(spec=L_SPEC, name="egovideo_l")
def _egovideo_l_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-L vision tower, frozen (uint8 frames in, 512-d out)."""
    return frozen_egovideo("egovideo_l", L_CONFIG, L_SPEC, checkpoint, num_frames)


@register_encoder(spec=G_SPEC, name="egovideo_g")
def _egovideo_g_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-G vision tower (InternVideo2-1B), frozen (uint8 frames in, 512-d out)."""
    return frozen_egovideo_g("egovideo_g", G_CONFIG, G_SPEC, checkpoint, num_frames)


@register_encoder(spec=TINY_SPEC, name="egovideo_tiny")
def _egovideo_tiny_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-tiny vision tower, frozen (tests)."""
    return frozen_egovideo("egovideo_tiny", TINY_CONFIG, TINY_SPEC, checkpoint, num_frames)


@register_encoder(spec=SMALL_SPEC, name="egovideo_small")
def _egovideo_small_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-small vision tower, frozen (uint8 frames in, 256-d out); no official weights."""
    return frozen_egovideo("egovideo_small", SMALL_CONFIG, SMALL_SPEC, checkpoint, num_frames)
