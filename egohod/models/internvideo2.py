"""EgoVideo-G: the InternVideo2-1B vision tower with a BERT-large text encoder.

Facts (from OpenGVLab/EgoVideo ``backbone/model``, the released G model code):

* vision (``visual.*``): ``patch_embed.proj`` Conv3d 3->1408, kernel (1, 14, 14), with bias;
  ``cls_token``; one joint position embedding ``pos_embed`` ``[1, 1 + T*16*16, 1408]`` (learned,
  sincos-initialised; linearly interpolated along time for another T); 40 pre-norm blocks with
  RMSNorm (eps 1e-6), bias-free ``qkv``, RMSNorm ``q_norm``/``k_norm`` over the full width,
  16 heads (head dim 88), layer scale ``ls1``/``ls2``, MLP 1408->6144->1408 with tanh-GELU
  (flash-attn's FusedMLP default); no final norm. Pooling: ``clip_projector``, an attention
  pool whose query is the token mean (LayerNorms eps 1e-5 on q/k/v inputs, separate q/k/v
  biases, 16 heads) projecting to 768; then ``image_projection`` ``[768, 512]``.
  ``clip_pos_embed``, ``clip_decoder.*`` and ``final_clip_decoder.*`` (distillation heads)
  are in the files but never run: accepted and dropped on load.
* text (``textual.*``): BERT-large-uncased (hidden 1024, 16 heads, post-LN eps 1e-12, exact
  GELU). The model calls it in ``mode="text"``: only the first ``fusion_layer = 19`` layers run
  (layers 19-23 carry cross-attention for a fusion mode EgoVideo never uses: accepted and
  dropped on load, as is ``pooler.*``). Pooled at the ``[CLS]`` token, then
  ``text_projection`` ``[1024, 512]``. Padding (id 0) is masked.
* pixels: ImageNet mean/std on 0..1 (the G evaluation code), resize 224 + centre crop.
* checkpoint: ``image_projection``/``text_projection`` sit at the top level of the official
  files; here they live in the towers (``visual.image_projection``/``textual.text_projection``)
  and are renamed on load. There is no ``logit_scale`` in the G model (it may be absent).

``EgoVideoG`` has the same encode/forward API as :class:`~egohod.models.egovideo.EgoVideo`; it
has no motion adapter, so ``encode_video_dual`` raises.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .spec import InputSpec
from .towers import VideoTextTowers


@dataclass(frozen=True)
class EgoVideoGConfig:
    image_size: int = 224
    patch_size: int = 14
    num_frames: int = 4
    vision_width: int = 1408
    vision_layers: int = 40
    vision_heads: int = 16
    vision_mlp: int = 6144
    pool_dim: int = 768
    text_width: int = 1024
    text_heads: int = 16
    text_layers: int = 24
    text_fusion_layer: int = 19  # layers run in text mode
    text_mlp: int = 4096
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    embed_dim: int = 512
    context_length: int = 40

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class QKNormAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm, self.k_norm = RMSNorm(dim), RMSNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, d).unbind(2)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class GMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class GBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.attn, self.ls1 = RMSNorm(dim), QKNormAttention(dim, heads), LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = RMSNorm(dim), GMlp(dim, hidden), LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class CrossAttentionPool(nn.Module):
    """Attention pooling: the mean token queries all tokens; output ``[B, out_dim]``."""

    def __init__(self, dim: int, heads: int, out_dim: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.q_bias, self.k_bias, self.v_bias = (nn.Parameter(torch.zeros(dim)) for _ in range(3))
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, xq: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        b, n, d = xk.shape
        h = self.heads
        q = F.linear(xq, self.q.weight, self.q_bias).view(b, 1, h, d // h).transpose(1, 2)
        k = F.linear(xk, self.k.weight, self.k_bias).view(b, n, h, d // h).transpose(1, 2)
        v = F.linear(xv, self.v.weight, self.v_bias).view(b, n, h, d // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, d)
        return self.proj(out)


class AttentionPool(nn.Module):
    def __init__(self, dim: int, heads: int, out_dim: int):
        super().__init__()
        self.norm1_q, self.norm1_k, self.norm1_v = (nn.LayerNorm(dim, eps=1e-5) for _ in range(3))
        self.cross_attn = CrossAttentionPool(dim, heads, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.norm1_q(x.mean(1, keepdim=True))
        return self.cross_attn(q, self.norm1_k(x), self.norm1_v(x)).squeeze(1)


class PatchEmbed3d(nn.Module):
    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv3d(3, dim, kernel_size=(1, patch, patch), stride=(1, patch, patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # [B, D, T, gh, gw]
        return x.flatten(3).permute(0, 2, 3, 1).flatten(1, 2)  # [B, T*gh*gw, D], frame-major


class InternVideo2Vision(nn.Module):
    """``[B, 3, T, 224, 224]`` -> ``[B, 512]`` (pooled 768-d then ``image_projection``)."""

    def __init__(self, cfg: EgoVideoGConfig):
        super().__init__()
        d = cfg.vision_width
        self.image_size, self.patch_size, self.num_frames = cfg.image_size, cfg.patch_size, cfg.num_frames
        self.grid = (cfg.grid, cfg.grid)
        self.output_dim = cfg.embed_dim
        self.patch_embed = PatchEmbed3d(d, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_frames * cfg.grid ** 2, d))
        self.blocks = nn.ModuleList(GBlock(d, cfg.vision_heads, cfg.vision_mlp) for _ in range(cfg.vision_layers))
        self.clip_projector = AttentionPool(d, cfg.vision_heads, cfg.pool_dim)
        self.image_projection = nn.Parameter(torch.empty(cfg.pool_dim, cfg.embed_dim))
        self.grad_checkpointing = False
        for p in (self.cls_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        nn.init.trunc_normal_(self.image_projection, std=cfg.pool_dim ** -0.5)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def pos_embed_for(self, t: int) -> torch.Tensor:
        pe = self.pos_embed
        if t == self.num_frames:
            return pe
        cls_pe, patch_pe = pe[:, :1], pe[:, 1:]
        d = pe.shape[-1]
        hw = patch_pe.shape[1] // self.num_frames
        seq = patch_pe.view(self.num_frames, hw, d).permute(1, 2, 0)  # [HW, D, T]
        seq = F.interpolate(seq, size=t, mode="linear", align_corners=False)
        return torch.cat([cls_pe, seq.permute(2, 0, 1).reshape(1, t * hw, d)], dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"video must be [B, 3, T, {self.image_size}, {self.image_size}]; got {tuple(x.shape)}")
        tok = self.patch_embed(x.to(self.patch_embed.proj.weight.dtype))
        tok = torch.cat([self.cls_token.expand(tok.shape[0], -1, -1), tok], dim=1)
        return tok + self.pos_embed_for(x.shape[2])

    def run_block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(self.blocks[i], x, use_reentrant=False)
        return self.blocks[i](x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the last block ``[B, 1 + T*g*g, 1408]`` (the model has no final norm)."""
        x = self.embed(x)
        for i in range(len(self.blocks)):
            x = self.run_block(i, x)
        return x

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False):
        n = len(self.blocks)
        take = list(range(n)) if indices is None else (
            list(range(n - indices, n)) if isinstance(indices, int) else [i % n for i in indices])
        x = self.embed(x)
        inter = []
        for i in range(n):
            x = self.run_block(i, x)
            if i in take:
                inter.append(x)
        return x, inter

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip_projector(tokens) @ self.image_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: EgoVideoGConfig):
        super().__init__()
        w = cfg.text_width
        self.word_embeddings = nn.Embedding(cfg.vocab_size, w, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.max_positions, w)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, w)
        self.LayerNorm = nn.LayerNorm(w, eps=1e-12)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _Dense(nn.Module):
    """``dense`` (+ optional post ``LayerNorm`` on the residual sum), HF BERT naming."""

    def __init__(self, din: int, dout: int, ln: bool):
        super().__init__()
        self.dense = nn.Linear(din, dout)
        if ln:
            self.LayerNorm = nn.LayerNorm(dout, eps=1e-12)


class _SelfAttn(nn.Module):
    def __init__(self, w: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(w, w), nn.Linear(w, w), nn.Linear(w, w)


class _Attention(nn.Module):
    def __init__(self, w: int):
        super().__init__()
        self.self = _SelfAttn(w)
        self.output = _Dense(w, w, ln=True)


class BertLayer(nn.Module):
    def __init__(self, w: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.attention = _Attention(w)
        self.intermediate = _Dense(w, hidden, ln=False)
        self.output = _Dense(hidden, w, ln=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        sa = self.attention.self
        q, k, v = (lin(x).view(b, n, self.heads, w // self.heads).transpose(1, 2) for lin in (sa.query, sa.key, sa.value))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, w)
        ao = self.attention.output
        x = ao.LayerNorm(ao.dense(a) + x)
        h = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(self.output.dense(h) + x)


class _Encoder(nn.Module):
    def __init__(self, cfg: EgoVideoGConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg.text_width, cfg.text_heads, cfg.text_mlp)
                                   for _ in range(cfg.text_fusion_layer))


class BertTextEncoder(nn.Module):
    """BERT text tower in text mode: ids ``[B, L]`` (0 = padding) -> ``[B, 512]`` at ``[CLS]``."""

    def __init__(self, cfg: EgoVideoGConfig):
        super().__init__()
        self.context_length = cfg.context_length
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = _Encoder(cfg)
        self.text_projection = nn.Parameter(torch.empty(cfg.text_width, cfg.embed_dim))
        self.grad_checkpointing = False
        nn.init.trunc_normal_(self.text_projection, std=cfg.text_width ** -0.5)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"tokens must be an integer tensor [B, L]; got {tuple(ids.shape)} {ids.dtype}")
        x = self.embeddings(ids.long())
        keep = (ids != 0)[:, None, None, :]  # [B, 1, 1, L]
        mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(~keep, torch.finfo(x.dtype).min)
        for layer in self.encoder.layer:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask)
        return x

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.forward_features(ids)[:, 0] @ self.text_projection


class EgoVideoG(VideoTextTowers):
    """EgoVideo-G: same API as ``EgoVideo`` (no motion adapter)."""

    def __init__(self, cfg: EgoVideoGConfig, input_spec: InputSpec | None = None, name: str = "egovideo_g"):
        super().__init__(cfg, input_spec, name, InternVideo2Vision(cfg), BertTextEncoder(cfg))
        self.slowfast_projection = None


# -- official G checkpoint layout ---------------------------------------------------------------
G_UNUSED_KEYS = (
    re.compile(r"^visual\.(clip_pos_embed|img_pos_embed|clip_img_pos_embed)$"),
    re.compile(r"^visual\.(clip_decoder|final_clip_decoder)\..+$"),
    re.compile(r"^textual\.pooler\..+$"),
    re.compile(r"^textual\.embeddings\.position_ids$"),
)


def g_to_internal_layout(sd: dict, cfg: EgoVideoGConfig) -> tuple[dict, list[str]]:
    """Rename the top-level projections and drop keys of modules that never run.

    Returns ``(state_dict, dropped_keys)``.
    """
    out, dropped = {}, []
    fusion = re.compile(r"^textual\.encoder\.layer\.(\d+)\.")
    for k, v in sd.items():
        if k == "image_projection":
            k = "visual.image_projection"
        elif k == "text_projection":
            k = "textual.text_projection"
        elif k.startswith("textual.bert."):
            k = "textual." + k[len("textual.bert."):]
        m = fusion.match(k)
        if any(p.match(k) for p in G_UNUSED_KEYS) or (m and cfg.text_fusion_layer <= int(m.group(1)) < cfg.text_layers):
            dropped.append(k)
            continue
        out[k] = v
    return out, dropped
