"""The registered EgoVideo variants: one builder per variant, for full models and frozen encoders.

==============  =========================================  ======  ======  =====
name            vision / text                              pixels  frames  embed
==============  =========================================  ======  ======  =====
egovideo_b      ViT-B/16 (768, 12L) / CLIP text 512, 12L     224      4     512
egovideo_l      ViT-L/14 (1024, 24L) / CLIP text 768, 12L    336      4     512
egovideo_g      InternVideo2-1B (1408, 40L) / BERT-large     224      4     512
egovideo_tiny   ViT 64-wide, 2L, patch 16 / text 64, 2L       32      4      32
==============  =========================================  ======  ======  =====

``create_model(name, checkpoint=None, num_frames=None, adapter=None, trust_pickle=False)``:

* ``num_frames``: build for another clip length; the checkpoint's ``temporal_embedding`` is
  linearly interpolated to it on load.
* ``adapter``: ``None`` follows the checkpoint (motion adapters + ``slowfast_projection`` are
  built iff the checkpoint has them; always built without a checkpoint); ``True`` builds them
  and, if the checkpoint has none (the released no-adapter weights), keeps their identity
  initialisation (listed in ``model.fresh_init_keys``); ``False`` never builds them (a
  checkpoint with adapter weights is then an error).

The returned model has ``.weights``: "random" or the sha256 of the checkpoint file.
"""
from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .checkpoint_io import file_sha256, load_state_dict_strict, read_checkpoint
from .egovideo import EgoVideo, EgoVideoConfig, interpolate_temporal_embedding
from .frozen import FrozenVideoEncoder
from .registry import create_model, register_encoder, register_model
from .spec import InputSpec

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

_ADAPTER_KEY = re.compile(r"^visual\.transformer\.resblocks\.\d+\.adapter\.(down_proj|up_proj|dwconv|conv|gamma)\b")


def checkpoint_has_adapter(sd: dict) -> bool:
    return "slowfast_projection" in sd or any(_ADAPTER_KEY.match(k) for k in sd)


def _resize_temporal(v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if v.dim() == 2 and v.shape[1] == shape[1]:
        return interpolate_temporal_embedding(v, shape[0])
    return v


def load_egovideo_checkpoint(model: EgoVideo, sd: dict, source: str) -> dict:
    """Strictly load a (normalised) state dict into an EgoVideo model; see module docstring."""
    own = model.state_dict()
    allow = []
    if model.visual.has_adapter and not checkpoint_has_adapter(sd):
        allow = [k for k in own if ".adapter." in k or k == "slowfast_projection"]
    info = load_state_dict_strict(model, sd, source=source, variant=model.name, allow_missing=allow,
                                  resize={"visual.temporal_embedding": _resize_temporal})
    if allow:
        warnings.warn(f"{source} has no motion-adapter weights; {model.name}'s adapters and slowfast_projection "
                      "keep their initialisation (adapters start as the identity)", stacklevel=3)
    return info


def build_egovideo(name: str, cfg: EgoVideoConfig, spec: InputSpec, checkpoint: str | Path | None = None,
                   num_frames: int | None = None, adapter: bool | None = None, trust_pickle: bool = False,
                   **overrides) -> EgoVideo:
    sd = read_checkpoint(checkpoint, trust_pickle=trust_pickle) if checkpoint is not None else None
    if adapter is None:
        adapter = True if sd is None else checkpoint_has_adapter(sd)
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}")
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


def frozen_from_model(name: str, checkpoint=None, num_frames=None) -> FrozenVideoEncoder:
    """A frozen encoder over the vision tower of ``create_model(name, ...)``."""
    model = create_model(name, checkpoint=checkpoint, num_frames=num_frames)
    return FrozenVideoEncoder(model.visual, model.input_spec, weights=model.weights, name=name)


@register_encoder(spec=B_SPEC, name="egovideo_b")
def _egovideo_b_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-B vision tower, frozen (uint8 frames in, 512-d out)."""
    return frozen_from_model("egovideo_b", checkpoint, num_frames)


@register_encoder(spec=L_SPEC, name="egovideo_l")
def _egovideo_l_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-L vision tower, frozen (uint8 frames in, 512-d out)."""
    return frozen_from_model("egovideo_l", checkpoint, num_frames)


@register_encoder(spec=TINY_SPEC, name="egovideo_tiny")
def _egovideo_tiny_encoder(checkpoint=None, num_frames=None) -> nn.Module:
    """EgoVideo-tiny vision tower, frozen (tests)."""
    return frozen_from_model("egovideo_tiny", checkpoint, num_frames)
