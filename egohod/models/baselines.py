"""Frozen baseline image encoders that robot-learning papers compare EgoVideo against.

Each is registered with :func:`register_encoder` and built by :func:`egohod.load_encoder`:

========  =======================================  =====  ==============================
name      backbone                                 dim    checkpoint file it loads
========  =======================================  =====  ==============================
r3m       torchvision ResNet-50 (fc removed)       2048   R3M ``model.pt`` (``{'r3m': {'module.convnet.*', ...}}``)
clip      open_clip ViT-B-16 image tower           512    open_clip state dict (``visual.*`` keys used)
mvp       timm ViT-B/16, MAE encoder, CLS token    768    MAE-style ``{'model': {...}}`` (decoder keys ignored)
vc1       timm ViT-B/16, MAE encoder, CLS token    768    VC-1 ``vc1_vitb.pth`` (same MAE layout)
dinov2    timm ViT-B/14 at 224 px, CLS token       768    official ``dinov2_vitb14_pretrain.pth``
========  =======================================  =====  ==============================

Without a checkpoint an encoder keeps its random initialisation and reports
``.weights == "random"``; with one, ``.weights`` is the file's sha256. Keys of the file are
matched strictly (after removing ``module.`` prefixes and the parts of the file that are not
the image encoder: R3M's language heads, MAE decoders, CLIP's text tower, DINOv2's mask
token); anything else missing or unexpected raises :class:`CheckpointError`.

Input contract (all of them): uint8 ``[B, H, W, 3]`` or ``[B, T, H, W, 3]`` with
``T == num_frames``. Frames are resized (short side) and centre-cropped to the spec's image
size, scaled to 0..1 and normalised with the spec's mean/std. These are image models: each
frame is embedded separately and the ``T`` embeddings are concatenated (frame stacking), so
``embed_dim == num_frames * <backbone dim>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from .frozen import FrozenEncoder
from .registry import register_encoder
from .spec import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, InputSpec


class FrozenImageEncoder(FrozenEncoder):
    """uint8 frames -> per-frame backbone embedding -> concatenated over frames.

    The :class:`egohod.models.frozen.FrozenEncoder` contract (input validation, preprocessing,
    eval mode, no grad, output float32 on the encoder's device), with frames embedded one by one
    and the embeddings concatenated: ``embed_dim == num_frames * frame_dim``.
    """

    def __init__(self, name: str, backbone: nn.Module, spec: InputSpec, frame_dim: int,
                 weights: str = "random", num_frames: int | None = None):
        n = int(num_frames or spec.num_frames)
        super().__init__(name, spec, n, weights, embed_dim=frame_dim * n)
        self.backbone = backbone
        self.frame_dim = frame_dim
        self.freeze()

    def tower(self) -> nn.Module:
        return self.backbone

    def forward_features(self, frames) -> torch.Tensor:
        """Per-frame embeddings ``[B, T, frame_dim]``."""
        frames = self.check_frames(frames)
        b, t = frames.shape[:2]
        with torch.no_grad():
            x = self.preprocess(frames.flatten(0, 1).unsqueeze(1))  # [B*T, 3, 1, S, S]
            return self.backbone(x[:, :, 0]).float().reshape(b, t, -1)

    def forward(self, frames) -> torch.Tensor:
        return self.forward_features(frames).flatten(1)

    def extra_repr(self) -> str:
        return f"name={self.name}, num_frames={self.num_frames}, embed_dim={self.embed_dim}, weights={self.weights[:12]}"


# --- checkpoint reading ---------------------------------------------------------------------

def _read(path: str | Path, wrappers: Iterable[str]) -> dict[str, torch.Tensor]:
    """A tensor dict from ``path``: safetensors, or a ``torch.save`` pickle read with
    ``weights_only=True`` (:func:`egohod.safe_load.load_torch`), unwrapped from the first of
    ``wrappers`` present, prefixes removed."""
    from .checkpoint_io import CheckpointError, load_checkpoint_object, strip_prefixes

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj = load_file(str(path))
    else:
        obj = load_checkpoint_object(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    for w in wrappers:
        if w in obj and isinstance(obj[w], Mapping):
            obj = obj[w]
            break
    return strip_prefixes({k: v for k, v in obj.items() if isinstance(v, torch.Tensor)})


def _load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], source: str, name: str,
                 resize: Mapping[str, Callable] | None = None) -> None:
    from .checkpoint_io import CheckpointError

    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {source} does not match encoder {name!r}: "
            f"{len(missing)} missing key(s) {missing[:8]}, {len(unexpected)} unexpected key(s) {unexpected[:8]}"
        )
    out = {}
    bad = []
    for k, v in sd.items():
        if v.shape != own[k].shape and resize and k in resize:
            v = resize[k](v, own[k].shape)
        if v.shape != own[k].shape:
            bad.append(f"{k}: expected {tuple(own[k].shape)}, got {tuple(v.shape)}")
        out[k] = v
    if bad:
        raise CheckpointError(f"checkpoint {source} does not match encoder {name!r}: " + "; ".join(bad[:8]))
    module.load_state_dict(out, strict=True)


def _weights_id(checkpoint) -> str:
    from .checkpoint_io import file_sha256

    return "random" if checkpoint is None else file_sha256(checkpoint)


# --- r3m ------------------------------------------------------------------------------------
R3M_SPEC = InputSpec(224, 1, 2048, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def r3m_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """R3M file keys (``convnet.*`` after prefix removal) -> torchvision ResNet-50 keys; the
    language encoder/reward heads (``lang_enc.*``, ``lang_rew.*``) are not part of the encoder."""
    return {k[len("convnet."):]: v for k, v in sd.items() if k.startswith("convnet.") and not k.startswith("convnet.fc.")}


@register_encoder(spec=R3M_SPEC)
def r3m(checkpoint=None, num_frames=None) -> nn.Module:
    """R3M: ResNet-50 trained on Ego4D (time contrastive + video-language), 2048-d."""
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    net.fc = nn.Identity()
    if checkpoint is not None:
        sd = r3m_state_dict(_read(checkpoint, ("r3m", "state_dict", "model")))
        _load_strict(net, sd, str(checkpoint), "r3m")
    return FrozenImageEncoder("r3m", net, R3M_SPEC, 2048, _weights_id(checkpoint), num_frames)


# --- clip -----------------------------------------------------------------------------------
CLIP_SPEC = InputSpec(224, 1, 512, mean=CLIP_MEAN, std=CLIP_STD)


@register_encoder(spec=CLIP_SPEC)
def clip(checkpoint=None, num_frames=None) -> nn.Module:
    """CLIP ViT-B/16 image tower (open_clip), projected 512-d embedding."""
    import open_clip

    model = open_clip.create_model("ViT-B-16", pretrained=None)
    visual = model.visual
    del model
    if checkpoint is not None:
        sd = _read(checkpoint, ("state_dict", "model"))
        if not any(k.startswith("visual.") for k in sd):
            from .checkpoint_io import CheckpointError

            raise CheckpointError(f"checkpoint {checkpoint} has no 'visual.*' keys: not an open_clip CLIP state dict "
                                  "(OpenAI TorchScript archives are not supported; use open_clip's converted weights)")
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
        _load_strict(visual, sd, str(checkpoint), "clip")
    return FrozenImageEncoder("clip", visual, CLIP_SPEC, 512, _weights_id(checkpoint), num_frames)


# --- MAE ViTs (mvp, vc1) and dinov2 ---------------------------------------------------------
def _mae_encoder_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the MAE decoder and mask token: pretraining-only parts of the file."""
    return {k: v for k, v in sd.items() if not k.startswith("decoder") and k != "mask_token"}


def _mae_vit(name: str, checkpoint, num_frames) -> nn.Module:
    import timm

    net = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, global_pool="token")
    if checkpoint is not None:
        sd = _mae_encoder_keys(_read(checkpoint, ("model", "state_dict")))
        _load_strict(net, sd, str(checkpoint), name)
    return FrozenImageEncoder(name, net, MAE_SPEC, 768, _weights_id(checkpoint), num_frames)


MAE_SPEC = InputSpec(224, 1, 768, mean=IMAGENET_MEAN, std=IMAGENET_STD)


@register_encoder(spec=MAE_SPEC)
def mvp(checkpoint=None, num_frames=None) -> nn.Module:
    """MVP: MAE ViT-B/16 pretrained on egocentric frames (Ego-Soup), CLS token, 768-d."""
    return _mae_vit("mvp", checkpoint, num_frames)


@register_encoder(spec=MAE_SPEC)
def vc1(checkpoint=None, num_frames=None) -> nn.Module:
    """VC-1 base: MAE ViT-B/16 (CortexBench), CLS token, 768-d."""
    return _mae_vit("vc1", checkpoint, num_frames)


DINOV2_SPEC = InputSpec(224, 1, 768, mean=IMAGENET_MEAN, std=IMAGENET_STD)


@register_encoder(spec=DINOV2_SPEC)
def dinov2(checkpoint=None, num_frames=None) -> nn.Module:
    """DINOv2 ViT-B/14 at 224 px (position embedding resampled from the file's grid), CLS, 768-d."""
    import timm
    from timm.layers import resample_abs_pos_embed

    net = timm.create_model("vit_base_patch14_dinov2", pretrained=False, num_classes=0, img_size=224)
    if checkpoint is not None:
        sd = {k: v for k, v in _read(checkpoint, ("model", "state_dict", "teacher")).items() if k != "mask_token"}

        def resize_pos(v, shape):
            old = int(round((v.shape[1] - 1) ** 0.5))
            new = int(round((shape[1] - 1) ** 0.5))
            return resample_abs_pos_embed(v, new_size=[new, new], old_size=[old, old], num_prefix_tokens=1)

        _load_strict(net, sd, str(checkpoint), "dinov2", resize={"pos_embed": resize_pos})
    return FrozenImageEncoder("dinov2", net, DINOV2_SPEC, 768, _weights_id(checkpoint), num_frames)
