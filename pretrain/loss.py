"""Symmetric InfoNCE over features gathered from all ranks.

Every rank gathers the (normalised) video and text features of all ranks; its own slice keeps
its autograd graph, the other slices are constants. Each rank then computes the loss over the
whole global batch, so the loss *value* is the same on every rank and equals the single-process
loss on the concatenated batch. The gradient on a rank flows only through its local features
(open_clip's ``gather_with_grad=False``, upstream EgoHOD's choice); after DDP averages the
ranks' gradients the update equals the full-batch gradient divided by the world size, which
AdamW's normalisation makes immaterial.

The temperature is ``logit_scale.exp()`` and is not trained (the model keeps it frozen).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["ClipLossOutput", "clip_loss", "gather_with_local_grad"]


def gather_with_local_grad(x: torch.Tensor) -> torch.Tensor:
    """``[B, E]`` per rank -> ``[world * B, E]`` in rank order; only the local rows keep gradients.

    All ranks must pass the same ``B``. Without an initialised process group returns ``x``.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    world, rank = dist.get_world_size(), dist.get_rank()
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts, dim=0)


class ClipLossOutput(dict):
    """``loss`` (tensor with graph), ``acc_v2t`` / ``acc_t2v`` (top-1 over the global batch, floats)."""

    @property
    def loss(self) -> torch.Tensor:
        return self["loss"]


def clip_loss(video: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor | float) -> ClipLossOutput:
    """Symmetric InfoNCE of L2-normalised ``video`` and ``text`` features ``[B, E]`` (local batch).

    ``logit_scale`` is the already-exponentiated temperature (``model.logit_scale.exp()``).
    Rows ``i`` of both are a positive pair; every other row of the global batch is a negative.
    """
    if video.shape != text.shape or video.dim() != 2:
        raise ValueError(f"video and text features must both be [B, E]; got {tuple(video.shape)} and {tuple(text.shape)}")
    b = video.shape[0]
    all_v = gather_with_local_grad(video)
    all_t = gather_with_local_grad(text)
    # compute in float32: the logits of a bf16 autocast forward lose the small differences
    all_v, all_t = all_v.float(), all_t.float()
    scale = logit_scale if isinstance(logit_scale, torch.Tensor) else torch.tensor(float(logit_scale))
    logits = scale.float() * all_v @ all_t.t()  # [N, N], N = global batch
    n = logits.shape[0]
    labels = torch.arange(n, device=logits.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    with torch.no_grad():
        acc_v2t = (logits.argmax(1) == labels).float().mean().item()
        acc_t2v = (logits.argmax(0) == labels).float().mean().item()
    out = ClipLossOutput(loss=loss, acc_v2t=acc_v2t, acc_t2v=acc_t2v, global_batch=n)
    if n % b:
        raise RuntimeError(f"gathered batch {n} is not a multiple of the local batch {b}: ranks disagree on batch size")
    return out
