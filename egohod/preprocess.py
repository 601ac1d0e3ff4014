"""Pixel preprocessing shared by the frozen encoders (:mod:`egohod.models.frozen`,
:mod:`egohod.models.baselines`), the exported graphs and the clip transforms of
:mod:`egohod.data.transforms`: uint8 checks, short-side resize, centre crop and channel
normalisation on batched tensors. Depends on torch and numpy only (no model, no dataset), so
``egohod.models`` and ``egohod.data`` both build on it without importing each other.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def as_uint8_frames(frames, what: str = "frames") -> torch.Tensor:
    """Check and convert uint8 ``[..., H, W, 3]`` (tensor or ndarray) to a torch uint8 tensor."""
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise TypeError(f"{what} must be uint8 pixels in 0..255; got a numpy array of {frames.dtype}")
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy.ndarray of uint8; got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TypeError(
            f"{what} must be uint8 pixels in 0..255 (channels last); got {frames.dtype}. "
            "Float frames that are already CLIP-normalised go to model.encode_video instead."
        )
    if frames.shape[-1] != 3:
        raise ValueError(f"{what} must be channels-last RGB [..., H, W, 3]; got shape {tuple(frames.shape)}")
    return frames


def short_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) after :func:`resize_short_side` to ``size``."""
    if min(h, w) == size:
        return h, w
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


def resize_short_side(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[N, C, H, W]`` float -> short side ``size`` (long side ``int(size * long / short)``, as
    torchvision), bicubic with antialiasing."""
    h, w = int(x.shape[-2]), int(x.shape[-1])  # python ints: traced/exported graphs fix the input size
    if min(h, w) == size:
        return x
    nh, nw = short_side_shape(h, w, size)
    return F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h < size or w < size:
        raise ValueError(f"cannot centre-crop {size}x{size} from {h}x{w}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top: top + size, left: left + size]


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Channel normalisation of ``[N, 3, H, W]`` 0..1 pixels."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def preprocess_uint8(frames: torch.Tensor, image_size: int, resize: int, mean, std,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 ``[B, T, H, W, 3]`` -> float ``[B, 3, T, S, S]``: resize short side, centre crop, normalise."""
    b, t, h, w, c = frames.shape
    x = frames.reshape(b * t, h, w, c).permute(0, 3, 1, 2).to(dtype) / 255.0
    x = center_crop(resize_short_side(x, resize), image_size)
    x = normalize(x, mean, std)
    return x.reshape(b, t, 3, image_size, image_size).permute(0, 2, 1, 3, 4).contiguous()


def resize_crop_symbolic(x: torch.Tensor, resize: int, size: int) -> torch.Tensor:
    """:func:`center_crop` of :func:`resize_short_side` written with shape arithmetic only (no
    Python branch or ``int()`` on the input size), so an exported graph keeps H and W dynamic.
    Same pixels as the eager pair for any input of at least ``size`` after the resize (tested)."""
    h, w = x.shape[-2], x.shape[-1]
    if torch.jit.is_tracing():  # TorchScript tracing sees sizes as tensors; its graph keeps H, W fixed
        h, w = int(h), int(w)
    short = torch.sym_min(h, w)
    nh, nw = (resize * h) // short, (resize * w) // short  # = short_side_shape (int of the float ratio)
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    dh, dw = nh - size, nw - size
    qh, qw = dh // 2, dw // 2
    top = qh + (qh % 2) * (dh % 2)   # Python's round(d / 2): halves go to the even neighbour
    left = qw + (qw % 2) * (dw % 2)
    return x[..., top: top + size, left: left + size]
