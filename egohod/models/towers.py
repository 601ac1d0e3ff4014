"""The contract every EgoVideo variant shares: a ``visual`` and a ``textual`` tower projecting
into one embedding space, and a frozen contrastive temperature ``logit_scale``."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .spec import InputSpec


class VideoTextTowers(nn.Module):
    """Base of ``EgoVideo`` and ``EgoVideoG``. Registration order (visual, textual, logit_scale)
    is the parameter order seeded initialisations and optimizer states rely on."""

    def __init__(self, cfg, input_spec: InputSpec | None, name: str, visual: nn.Module, textual: nn.Module):
        super().__init__()
        self.cfg, self.name = cfg, name
        self.embed_dim = cfg.embed_dim
        self.input_spec = input_spec or InputSpec(cfg.image_size, cfg.num_frames, cfg.embed_dim)
        self.visual = visual
        self.textual = textual
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)), requires_grad=False)

    def encode_video(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``[B, 3, T, H, W]`` normalised float video -> ``[B, E]`` (backbone, no adapter)."""
        z = self.visual(video)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``[B, L]`` token ids (``egohod.get_tokenizer``) -> ``[B, E]``."""
        z = self.textual(tokens)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_video_dual(self, clip_fast: torch.Tensor, clip_slow: torch.Tensor, normalize: bool = False,
                          slow_grad: str | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no motion adapter; use encode_video")

    def forward(self, video: torch.Tensor, tokens: torch.Tensor, video_slow: torch.Tensor | None = None) -> dict:
        """Normalised embeddings for the contrastive loss.

        With ``video_slow`` the video embedding comes from the dual path.
        """
        if video_slow is None:
            v = self.encode_video(video, normalize=True)
        else:
            v = self.encode_video_dual(video, video_slow, normalize=True)
        return {"video": v, "text": self.encode_text(tokens, normalize=True), "logit_scale": self.logit_scale.exp()}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)
        self.textual.set_grad_checkpointing(enable)
