"""``EgoVideoCore``: an EgoVideo encoder as a robomimic observation core.

robomimic registers every :class:`robomimic.models.obs_core.EncoderCore` subclass by its class
name when the class is defined, so once this module is imported a config selects it with::

    config.observation.encoder.rgb.core_class = "EgoVideoCore"
    config.observation.encoder.rgb.core_kwargs = {"encoder": "egovideo_b", "checkpoint": "base.pt"}

robomimic feeds a core one camera frame as float ``[B, 3, H, W]`` in ``[0, 1]``. The core
resizes the short side, centre-crops and normalises with the encoder's own input spec (never
with numbers typed here), repeats the frame over the encoder's clip length and returns the
``[B, embed_dim]`` embedding (optionally projected to ``feature_dimension``).

``trainable=False`` (default) keeps the tower frozen: eval mode whatever robomimic asks, no
gradient, no parameter in the optimizer's reach. ``trainable=True`` fine-tunes it with the policy.
"""
from __future__ import annotations

import inspect

import torch
from robomimic.models.obs_core import EncoderCore
from torch import nn

from egohod.preprocess import center_crop, normalize, resize_short_side


class EgoVideoCore(EncoderCore):
    """robomimic core around ``egohod.load_encoder(encoder, checkpoint, num_frames, seed=seed)``.

    Args:
        input_shape: ``(3, H, W)`` of the camera frames (robomimic passes it).
        encoder: a registered encoder name (``egohod.list_encoders()``).
        checkpoint: weights file; ``None`` gives the seeded RANDOM WEIGHTS of ``(encoder, seed)``.
        num_frames: clip length the tower runs at (default: the variant's); the frame is repeated.
        seed: seed of the random weights when there is no checkpoint.
        trainable: fine-tune the tower with the policy instead of keeping it frozen.
        feature_dimension: if set, a trainable Linear from ``embed_dim`` to this size.
    """

    def __init__(self, input_shape, encoder: str = "egovideo_b", checkpoint: str | None = None,
                 num_frames: int | None = None, seed: int = 0, trainable: bool = False,
                 feature_dimension: int | None = None):
        super().__init__(input_shape=input_shape)
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ValueError(f"EgoVideoCore takes RGB frames (3, H, W); got input_shape {tuple(input_shape)}. "
                             "List the key under observation.modalities.obs.rgb")
        from egohod import load_encoder
        from egohod.models.frozen import FrozenVideoEncoder

        frozen = load_encoder(encoder, checkpoint=checkpoint, num_frames=num_frames, seed=seed)
        if not isinstance(frozen, FrozenVideoEncoder):
            raise ValueError(f"EgoVideoCore wraps video encoders (egovideo_*); {encoder!r} is a "
                             f"{type(frozen).__name__}")
        self.encoder_name = frozen.name
        self.weights = frozen.weights
        self.spec = frozen.input_spec
        self.num_frames = frozen.num_frames
        self.embed_dim = frozen.embed_dim
        self.trainable = bool(trainable)
        self.visual = frozen.tower()  # the tower alone: the frozen wrapper would pin eval mode
        self.visual.requires_grad_(self.trainable)
        self.visual.train(False)
        self.project = nn.Linear(self.embed_dim, feature_dimension) if feature_dimension else None

    @classmethod
    def check_kwargs(cls, core_kwargs: dict) -> None:
        """robomimic silently drops core_kwargs the class does not take; refuse them instead."""
        known = set(inspect.signature(cls.__init__).parameters) - {"self", "input_shape"}
        unknown = sorted(set(core_kwargs) - known)
        if unknown:
            raise ValueError(f"EgoVideoCore got unknown core_kwargs {unknown}; it takes {sorted(known)}")

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.trainable:
            self.visual.train(False)  # frozen: dropout / drop-path stay off during policy training
        return self

    def output_shape(self, input_shape=None):
        return [self.project.out_features if self.project is not None else self.embed_dim]

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """float ``[B, 3, H, W]`` in [0, 1] -> normalised clip ``[B, 3, T, S, S]`` (the frame repeated)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"EgoVideoCore expects float [B, 3, H, W] in [0, 1]; got {tuple(x.shape)}")
        s = self.spec
        ref = next(self.visual.parameters())
        x = x.to(device=ref.device, dtype=torch.float32)
        x = normalize(center_crop(resize_short_side(x, s.eval_resize), s.image_size), s.mean, s.std)
        return x.unsqueeze(2).expand(-1, -1, self.num_frames, -1, -1).to(ref.dtype)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            z = self.visual(self.preprocess(inputs)).float()
        return self.project(z) if self.project is not None else z

    def __repr__(self) -> str:
        from egohod.models import is_random_weights

        weights = f"RANDOM WEIGHTS ({self.weights})" if is_random_weights(self.weights) else self.weights[:12]
        mode = "trainable" if self.trainable else "frozen"
        out = self.output_shape()[0]
        return (f"EgoVideoCore(encoder={self.encoder_name}, {mode}, {self.spec.image_size}px x{self.num_frames} "
                f"frames -> {out}-d, weights={weights})")
