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

from robomimic.models.obs_core import EncoderCore
from torch import nn

from robot.integrations.frame_encoder import FrameEncoder


class EgoVideoCore(EncoderCore):
    """robomimic core around ``egohod.load_encoder(encoder, checkpoint, num_frames, seed=seed)``
    (through :class:`robot.integrations.frame_encoder.FrameEncoder`).

    Args:
        input_shape: ``(3, H, W)`` of the camera frames (robomimic passes it).
        encoder: a registered video encoder name (``egohod.list_encoders("egovideo*")``).
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
        self.encoder = FrameEncoder(encoder, checkpoint, num_frames, seed, trainable)
        self.trainable = self.encoder.trainable
        self.project = nn.Linear(self.encoder.embed_dim, feature_dimension) if feature_dimension else None

    @classmethod
    def check_kwargs(cls, core_kwargs: dict) -> None:
        """robomimic silently drops core_kwargs the class does not take; refuse them instead."""
        known = set(inspect.signature(cls.__init__).parameters) - {"self", "input_shape"}
        unknown = sorted(set(core_kwargs) - known)
        if unknown:
            raise ValueError(f"EgoVideoCore got unknown core_kwargs {unknown}; it takes {sorted(known)}")

    def output_shape(self, input_shape=None):
        return [self.project.out_features if self.project is not None else self.encoder.embed_dim]

    def forward(self, inputs):
        z = self.encoder(inputs)
        return self.project(z) if self.project is not None else z

    def __repr__(self) -> str:
        return f"EgoVideoCore({self.encoder.describe()}, out={self.output_shape()[0]})"
