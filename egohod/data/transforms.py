"""Video transforms built from a model's :class:`~egohod.models.spec.InputSpec`.

``create_transforms(name, train=False)`` returns a callable taking uint8 frames ``[T, H, W, 3]``
(torch tensor or numpy array, any size) and returning a float tensor ``[3, T, S, S]`` normalised
with the spec's mean/std on 0..1 pixels, ``S = spec.image_size``:

* eval: resize the short side to ``spec.eval_resize`` (bicubic, antialiased) and centre-crop ``S``
  (upstream: ``Resize(S, bicubic)`` + ``CenterCrop(S)``);
* train: one ``RandomResizedCrop(S, scale=(0.5, 1.0), ratio=(3/4, 4/3))`` shared by all frames
  of the clip, drawn in the frame resized to short side 320 (the resolution the pretraining
  videos are stored at), then a horizontal flip with probability 0.5 (the same for all frames).
  The crop box is mapped back to the input frame and cut there, so each frame is resized once,
  crop -> ``S x S`` (bicubic, antialiased); for input already at short side 320 this is exactly
  resize-then-crop. By default the resize runs on uint8 channels-last pixels (~25x faster than on
  float32 on one core; pixels then differ from the float path by rounding to whole levels and
  by clamping bicubic overshoot to 0..255); ``uint8_resize=False`` keeps it in float32.

Randomness comes only from the ``torch.Generator`` passed to ``create_transforms`` or to the
call (``tf(frames, generator=g)``); no global RNG is used when one is given.

The batched pixel helpers (:func:`~egohod.preprocess.resize_short_side`, ``center_crop``,
``normalize``, ``preprocess_uint8``, ``as_uint8_frames``) live in :mod:`egohod.preprocess`, shared
with the frozen encoders and the exported graphs; they are importable from here too.
``egohod.create_transforms(name)`` builds these transforms from a registered model's input spec
(this module does not import the model registry: ``egohod.data`` does not depend on
``egohod.models``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..preprocess import (as_uint8_frames, center_crop, normalize, preprocess_uint8, resize_short_side,  # noqa: F401
                          short_side_shape)

TRAIN_SHORT_SIDE = 320


def random_resized_crop_params(h: int, w: int, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3),
                               generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a random crop covering ``scale`` of the area with an
    aspect ratio in ``ratio`` (log-uniform); after 10 failed draws, the largest centred crop
    with a clamped ratio (torchvision's rule)."""
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=generator).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        ar = math.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1])
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
            return top, left, ch, cw
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


class VideoTransform:
    """uint8 ``[T, H, W, 3]`` -> float ``[3, T, S, S]`` (see the module docstring)."""

    def __init__(self, image_size: int, mean, std, resize: int | None = None, train: bool = False,
                 train_short_side: int = TRAIN_SHORT_SIDE, scale=(0.5, 1.0), flip: bool = True,
                 generator: torch.Generator | None = None, uint8_resize: bool = True):
        self.image_size, self.mean, self.std = image_size, tuple(mean), tuple(std)
        self.resize = resize or image_size
        self.train, self.train_short_side, self.scale, self.flip = train, train_short_side, tuple(scale), flip
        self.generator, self.uint8_resize = generator, bool(uint8_resize)
        # (x / 255 - mean) / std as one multiply-add
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in self.std]).view(3, 1, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)]).view(3, 1, 1, 1)

    def __repr__(self) -> str:
        mode = f"train(short={self.train_short_side}, rrc scale={self.scale}, flip={self.flip}, " \
               f"{'uint8' if self.uint8_resize else 'float32'} resize)" if self.train \
            else f"eval(resize={self.resize}, centre crop)"
        return f"VideoTransform({self.image_size}px, {mode})"

    def __call__(self, frames, generator: torch.Generator | None = None) -> torch.Tensor:
        frames = as_uint8_frames(frames)
        if frames.dim() == 3:
            frames = frames[None]
        if frames.dim() != 4:
            raise ValueError(f"frames must be [T, H, W, 3] or [H, W, 3]; got shape {tuple(frames.shape)}")
        if self.train:
            return self._train(frames, generator if generator is not None else self.generator)
        x = frames.permute(0, 3, 1, 2).float() / 255.0  # [T, 3, H, W]
        x = center_crop(resize_short_side(x, self.resize), self.image_size)
        x = normalize(x, self.mean, self.std)
        return x.permute(1, 0, 2, 3).contiguous()  # [3, T, S, S]

    def _train(self, frames: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        h, w = int(frames.shape[1]), int(frames.shape[2])
        rh, rw = short_side_shape(h, w, self.train_short_side)
        top, left, ch, cw = random_resized_crop_params(rh, rw, self.scale, generator=g)
        if (rh, rw) != (h, w):  # the same box in input pixels
            sy, sx = h / rh, w / rw
            top, left = min(h - 1, int(round(top * sy))), min(w - 1, int(round(left * sx)))
            ch, cw = max(1, min(h - top, int(round(ch * sy)))), max(1, min(w - left, int(round(cw * sx))))
        x = frames[:, top: top + ch, left: left + cw].permute(0, 3, 1, 2)  # [T, 3, ch, cw], channels-last view
        size = (self.image_size, self.image_size)
        if self.uint8_resize:
            if (ch, cw) != size:
                x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        else:
            x = F.interpolate(x.float() / 255.0, size=size, mode="bicubic", align_corners=False, antialias=True)
        if self.flip and float(torch.rand(1, generator=g)) < 0.5:
            x = x.flip(-1)
        if not self.uint8_resize:
            return normalize(x, self.mean, self.std).permute(1, 0, 2, 3).contiguous()
        out = torch.empty((3, x.shape[0]) + size)
        out.copy_(x.permute(1, 0, 2, 3))  # uint8 -> float32 [3, T, S, S] in one pass
        return out.mul_(self._scale).add_(self._shift)


def transforms_from_spec(spec, train: bool = False, generator: torch.Generator | None = None) -> VideoTransform:
    return VideoTransform(spec.image_size, spec.mean, spec.std, resize=spec.eval_resize, train=train,
                          generator=generator)
