"""Transformer building blocks shared by the EgoVideo vision and text towers.

Parameter names follow the *plain* layout of the official EgoVideo checkpoints
(``attn.in_proj_weight``, ``attn.out_proj``, ``mlp.c_fc``, ``mlp.c_proj``, ``ln_1``, ``ln_2``), so a
state dict of these modules is directly comparable with an upstream one. The flash-attention
layout (``attn.Wqkv``, ``mlp.fc1``/``fc2``) is translated on load in :mod:`.checkpoint_io`.

Attention goes through :func:`torch.nn.functional.scaled_dot_product_attention`.

Every block can run with *frozen weights*: ``frozen=True`` uses detached copies of its
parameters, so no gradient reaches the weights while gradients still flow through the
activations (used by the ``slow_grad="frozen"`` mode of the dual-path forward).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def _w(p: torch.Tensor | None, frozen: bool) -> torch.Tensor | None:
    return p.detach() if (frozen and p is not None) else p


def _layer_norm(ln: nn.LayerNorm, x: torch.Tensor, frozen: bool) -> torch.Tensor:
    return F.layer_norm(x, ln.normalized_shape, _w(ln.weight, frozen), _w(ln.bias, frozen), ln.eps)


def _linear(lin: nn.Linear, x: torch.Tensor, frozen: bool) -> torch.Tensor:
    return F.linear(x, _w(lin.weight, frozen), _w(lin.bias, frozen))


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v input projection.

    ``in_proj_weight`` is ``[3 * width, width]`` with the q, k and v rows stacked in that order
    (the layout of ``nn.MultiheadAttention`` and of flash-attn's ``Wqkv``).
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.trunc_normal_(self.in_proj_weight, std=0.02)
        nn.init.trunc_normal_(self.out_proj.weight, std=0.02)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, causal: bool = False, frozen: bool = False) -> torch.Tensor:
        b, n, d = x.shape
        qkv = F.linear(x, _w(self.in_proj_weight, frozen), _w(self.in_proj_bias, frozen))
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out = out.transpose(1, 2).reshape(b, n, d)
        return _linear(self.out_proj, out, frozen)


class Mlp(nn.Module):
    """``c_fc`` -> GELU (exact, erf form) -> ``c_proj``."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)
        for lin in (self.c_fc, self.c_proj):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        return _linear(self.c_proj, F.gelu(_linear(self.c_fc, x, frozen)), frozen)


class MotionAdapter(nn.Module):
    """Temporal motion adapter applied to the patch tokens after a block (CLS untouched).

    ``down_proj`` (D -> D/2), GELU, a depthwise temporal ``dwconv`` (k=3, pad=1) and a 1x1
    ``conv`` over the frame axis of every spatial position, added back to the hidden tokens,
    ``up_proj`` (D/2 -> D, zero-initialised) scaled by the scalar ``gamma`` (init 1) and added
    to the input tokens. At initialisation the adapter is the identity.
    """

    def __init__(self, width: int, ratio: float = 0.5, kernel_size: int = 3):
        super().__init__()
        hidden = int(width * ratio)
        self.down_proj = nn.Linear(width, hidden)
        self.up_proj = nn.Linear(hidden, width)
        self.dwconv = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)
        self.conv = nn.Conv1d(hidden, hidden, 1)
        self.gamma = nn.Parameter(torch.ones(1))
        nn.init.trunc_normal_(self.down_proj.weight, std=0.02)
        nn.init.zeros_(self.down_proj.bias)
        nn.init.zeros_(self.up_proj.weight)
        nn.init.zeros_(self.up_proj.bias)
        nn.init.normal_(self.dwconv.weight, std=math.sqrt(2.0 / kernel_size))
        nn.init.zeros_(self.dwconv.bias)
        nn.init.normal_(self.conv.weight, std=math.sqrt(2.0 / hidden))
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, num_frames: int, grid: tuple[int, int]) -> torch.Tensor:
        cls_tok, tokens = x[:, :1], x[:, 1:]
        b, n, _ = tokens.shape
        gh, gw = grid
        if n != num_frames * gh * gw:
            raise ValueError(f"adapter got {n} patch tokens, expected {num_frames}x{gh}x{gw}")
        h = F.gelu(self.down_proj(tokens))
        c = h.shape[-1]
        # [B, T*H*W, C] -> [B*H*W, C, T]: one temporal sequence per spatial position
        seq = h.view(b, num_frames, gh * gw, c).permute(0, 2, 3, 1).reshape(b * gh * gw, c, num_frames)
        seq = self.conv(self.dwconv(seq))
        motion = seq.view(b, gh * gw, c, num_frames).permute(0, 3, 1, 2).reshape(b, n, c)
        out = self.up_proj(h + motion) * self.gamma + tokens
        return torch.cat([cls_tok, out], dim=1)


class ResidualBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``.

    With ``adapter=True`` the block also owns a :class:`MotionAdapter` (key prefix ``adapter.``,
    as in the official checkpoints); the block's ``forward`` never calls it, the vision tower
    decides when the adapter runs.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, ln_eps: float = 1e-5,
                 adapter: bool = False):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=ln_eps)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=ln_eps)
        self.mlp = Mlp(width, int(width * mlp_ratio))
        self.adapter = MotionAdapter(width) if adapter else None

    def forward(self, x: torch.Tensor, causal: bool = False, frozen: bool = False) -> torch.Tensor:
        x = x + self.attn(_layer_norm(self.ln_1, x, frozen), causal=causal, frozen=frozen)
        return x + self.mlp(_layer_norm(self.ln_2, x, frozen), frozen=frozen)


class Transformer(nn.Module):
    """A stack of :class:`ResidualBlock` under ``resblocks`` with optional grad checkpointing."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, ln_eps: float = 1e-5,
                 adapter: bool = False):
        super().__init__()
        self.width, self.layers = width, layers
        self.grad_checkpointing = False
        self.resblocks = nn.ModuleList(
            ResidualBlock(width, heads, mlp_ratio, ln_eps, adapter=adapter) for _ in range(layers)
        )

    def run_block(self, i: int, x: torch.Tensor, causal: bool = False, frozen: bool = False) -> torch.Tensor:
        blk = self.resblocks[i]
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(blk, x, causal, frozen, use_reentrant=False)
        return blk(x, causal=causal, frozen=frozen)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for i in range(self.layers):
            x = self.run_block(i, x, causal=causal)
        return x
