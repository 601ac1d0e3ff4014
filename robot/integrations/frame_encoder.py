"""One camera frame as robot-learning stacks feed it (float ``[B, 3, H, W]`` in ``[0, 1]``) ->
an egohod video encoder's embedding. Shared by the robomimic core and the LeRobot policy plugin.

The encoder comes from ``egohod.load_encoder`` (its weights and input spec); the frame is
resized (short side), centre-cropped and normalised with that spec, then repeated over the
encoder's clip length. Frozen (default): the tower stays in eval mode and gets no gradient.
"""
from __future__ import annotations

import torch
from torch import nn

from egohod.preprocess import center_crop, normalize, resize_short_side


class FrameEncoder(nn.Module):
    """float ``[B, 3, H, W]`` in [0, 1] -> ``[B, embed_dim]`` through ``load_encoder(encoder, ...)``.

    Args:
        encoder: a registered video encoder (``egohod.list_encoders("egovideo*")``).
        checkpoint: weights file; ``None`` gives the seeded RANDOM WEIGHTS of ``(encoder, seed)``.
        num_frames: clip length the tower runs at (default: the variant's); the frame is repeated.
        seed: seed of the random weights when there is no checkpoint.
        trainable: fine-tune the tower instead of keeping it frozen.
    """

    def __init__(self, encoder: str = "egovideo_b", checkpoint: str | None = None,
                 num_frames: int | None = None, seed: int = 0, trainable: bool = False):
        super().__init__()
        from egohod import load_encoder
        from egohod.models.frozen import FrozenVideoEncoder

        frozen = load_encoder(encoder, checkpoint=checkpoint, num_frames=num_frames, seed=seed)
        if not isinstance(frozen, FrozenVideoEncoder):
            raise ValueError(f"FrameEncoder wraps video encoders (egovideo_*); {encoder!r} is a "
                             f"{type(frozen).__name__}")
        self.name = frozen.name
        self.weights = frozen.weights
        self.spec = frozen.input_spec
        self.num_frames = frozen.num_frames
        self.embed_dim = frozen.embed_dim
        self.trainable = bool(trainable)
        self.visual = frozen.tower()  # the tower alone: the frozen wrapper would pin eval mode
        self.visual.requires_grad_(self.trainable)
        self.visual.train(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.trainable:
            self.visual.train(False)  # frozen: dropout / drop-path stay off while the policy trains
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """float ``[B, 3, H, W]`` in [0, 1] -> normalised clip ``[B, 3, T, S, S]`` (the frame repeated)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected float frames [B, 3, H, W] in [0, 1]; got {tuple(x.shape)}")
        s = self.spec
        ref = next(self.visual.parameters())
        x = x.to(device=ref.device, dtype=torch.float32)
        x = normalize(center_crop(resize_short_side(x, s.eval_resize), s.image_size), s.mean, s.std)
        return x.unsqueeze(2).expand(-1, -1, self.num_frames, -1, -1).to(ref.dtype)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            return self.visual(self.preprocess(frames)).float()

    def describe(self) -> str:
        """One line naming the encoder, its mode and its weights (RANDOM WEIGHTS said so)."""
        from egohod.models import is_random_weights

        weights = f"RANDOM WEIGHTS ({self.weights})" if is_random_weights(self.weights) else self.weights[:12]
        mode = "trainable" if self.trainable else "frozen"
        return (f"{self.name}, {mode}, {self.spec.image_size}px x{self.num_frames} frames -> "
                f"{self.embed_dim}-d, weights={weights}")
