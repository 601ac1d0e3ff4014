"""Frozen video encoders: uint8 frames in, one embedding per clip out.

Contract of :class:`FrozenVideoEncoder` (what ``egohod.load_encoder`` returns)::

    enc = egohod.load_encoder("egovideo_b", checkpoint="base_best.pt")
    z = enc(frames)    # uint8 [B, T, H, W, 3] or [B, H, W, 3] (one frame, repeated), any H, W
                       # -> float32 [B, enc.embed_dim] (not L2-normalised)

* eval mode, no parameter requires grad, the forward runs under ``torch.no_grad`` semantics
  (the caller may still wrap it in ``torch.inference_mode``);
* it resizes the short side to ``input_spec.eval_resize`` (bicubic, antialiased), centre-crops
  ``input_spec.image_size`` and normalises with the spec's mean/std itself;
* ``T`` must equal ``enc.num_frames`` (set with ``load_encoder(..., num_frames=N)``; the temporal
  embedding is interpolated for ``N`` different from the variant's native count);
* the input is moved to the encoder's device; the output is float32 on that device;
* attributes ``.embed_dim``, ``.num_frames``, ``.input_spec``, ``.weights`` ("random:seed=<seed>"
  for the random weights of ``load_encoder(name, seed=...)``, or the sha256 hex of the checkpoint
  file) and ``.name``;
* ``enc.forward_features(frames)`` gives the tower's tokens, ``enc.forward_intermediates(frames,
  indices)`` per-block tokens (same input contract).

Wrong dtype (anything but uint8), rank, or channel count raise ``TypeError``/``ValueError``
saying what was expected.

:class:`FrozenEncoder` is the base of every frozen encoder, video (:class:`FrozenVideoEncoder`)
and image (:class:`egohod.models.baselines.FrozenImageEncoder`): the attributes, eval mode, input
checks and pixel preprocessing (:mod:`egohod.preprocess`) above; a subclass holds its tower and
says how frames become one embedding.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..preprocess import preprocess_uint8
from .spec import InputSpec


class FrozenEncoder(nn.Module):
    """What every frozen encoder shares: ``.name``, ``.num_frames``, ``.input_spec``, ``.embed_dim``,
    ``.weights``, eval mode for good, the uint8 input checks and the spec's preprocessing.

    A subclass registers its tower, then calls :meth:`freeze`; :meth:`tower` is the module whose
    parameters say the device and dtype the input is moved to.
    """

    def __init__(self, name: str, input_spec: InputSpec, num_frames: int | None = None, weights: str = "random",
                 embed_dim: int | None = None):
        super().__init__()
        self.name = name
        self.num_frames = int(num_frames or input_spec.num_frames)
        if self.num_frames < 1:
            raise ValueError(f"{name}: num_frames must be >= 1, got {self.num_frames}")
        self.embed_dim = int(embed_dim if embed_dim is not None else input_spec.embed_dim)
        self.input_spec = dataclasses.replace(input_spec, num_frames=self.num_frames, embed_dim=self.embed_dim)
        self.weights = weights

    def tower(self) -> nn.Module:
        raise NotImplementedError

    def freeze(self) -> "FrozenEncoder":
        """Eval mode and no parameter requiring grad (called once the tower is registered)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True):
        # a frozen encoder stays in eval mode (dropout/drop-path/BatchNorm statistics) whatever the caller does
        return super().train(False)

    def check_frames(self, frames) -> torch.Tensor:
        """Validate uint8 frames and return them as ``[B, T, H, W, 3]`` (single frames repeated)."""
        if isinstance(frames, np.ndarray):
            if frames.dtype != np.uint8:
                raise TypeError(f"{self.name}: frames must be uint8 in 0..255; got numpy {frames.dtype}")
            frames = torch.from_numpy(np.ascontiguousarray(frames))
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"{self.name}: frames must be a uint8 torch.Tensor or numpy array; "
                            f"got {type(frames).__name__}")
        if frames.dtype != torch.uint8:
            raise TypeError(
                f"{self.name}: frames must be uint8 pixels in 0..255, channels last; got {frames.dtype}. "
                "(This encoder normalises by itself; for CLIP-normalised float video use "
                "egohod.create_model(...).encode_video.)"
            )
        if frames.dim() == 4:
            frames = frames.unsqueeze(1).expand(-1, self.num_frames, -1, -1, -1)
        elif frames.dim() != 5:
            raise ValueError(f"{self.name}: frames must be [B, T, H, W, 3] or [B, H, W, 3]; "
                             f"got shape {tuple(frames.shape)}")
        if frames.shape[-1] != 3:
            raise ValueError(f"{self.name}: frames must have 3 channels last (RGB) [..., H, W, 3]; "
                             f"got shape {tuple(frames.shape)}")
        if frames.shape[1] != self.num_frames:
            raise ValueError(f"{self.name}: expected {self.num_frames} frames per clip, got {frames.shape[1]} "
                             f"(shape {tuple(frames.shape)}); pass num_frames={frames.shape[1]} to "
                             "load_encoder to change the clip length")
        return frames

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> normalised float ``[B, 3, T, S, S]`` on the tower's device and dtype."""
        s = self.input_spec
        ref = next(self.tower().parameters())
        x = preprocess_uint8(frames.to(ref.device), s.image_size, s.eval_resize, s.mean, s.std)
        return x.to(ref.dtype)


class FrozenVideoEncoder(FrozenEncoder):
    """Wraps a vision tower (``visual(video [B,3,T,S,S]) -> [B, E]``) with its preprocessing."""

    def __init__(self, visual: nn.Module, input_spec: InputSpec, num_frames: int | None = None,
                 weights: str = "random", name: str = "encoder"):
        super().__init__(name, input_spec, num_frames, weights)
        self.visual = visual
        self.freeze()

    def tower(self) -> nn.Module:
        return self.visual

    def extra_repr(self) -> str:
        s = self.input_spec
        return (f"name={self.name!r}, {s.image_size}px x{self.num_frames} frames -> {self.embed_dim}-d, "
                f"weights={self.weights[:12]}")

    def forward(self, frames) -> torch.Tensor:
        frames = self.check_frames(frames)
        with torch.no_grad():
            return self.visual(self.preprocess(frames)).float()

    def forward_features(self, frames) -> torch.Tensor:
        """Token features of the vision tower ``[B, 1 + T*g*g, D]`` (CLS first) from uint8 frames."""
        frames = self.check_frames(frames)
        with torch.no_grad():
            return self.visual.forward_features(self.preprocess(frames)).float()

    def forward_intermediates(self, frames, indices=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(final tokens, [tokens after each block in indices])`` from uint8 frames."""
        frames = self.check_frames(frames)
        with torch.no_grad():
            final, inter = self.visual.forward_intermediates(self.preprocess(frames), indices)
        return final.float(), [t.float() for t in inter]
