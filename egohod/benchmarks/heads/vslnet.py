"""VSLNet, the span-based localiser the Ego4D NLQ baseline trains on frozen clip features
(Zhang et al., "Span-based Localizing Network for Natural Language Video Localization", ACL 2020).

The network, for a clip's features ``[B, T, Dv]`` and a query's token features ``[B, L, Dq]``:

1. **Projection**: dropout + a linear map of the video features to ``dim``; a linear map of the
   token features to ``dim`` (the place of the Ego4D code's projected BERT states).
2. **Feature encoder**, one module shared by video and query: learned position embedding,
   ``conv_layers`` pre-norm depthwise-separable convolution blocks (kernel ``kernel_size``,
   residual), one pre-norm multi-head self-attention block.
3. **Context-query attention**: a trilinear similarity ``S = w_c.c + w_q.q + w_m.(c*q)``; the
   context-to-query read ``A = softmax_q(S) Q`` and the query-to-context read
   ``B = softmax_q(S) softmax_c(S)^T C``; the fused context is a linear map of
   ``[C, A, C*A, C*B]``. Then the query is attention-pooled to one vector, concatenated to every
   position and mapped back to ``dim``.
4. **Query-guided highlighting**: a per-position sigmoid score, trained to mark the answer window
   extended by ``extend`` of its length on each side, multiplies the fused features.
5. **Conditioned span predictor**: a start encoder and an end encoder that reads the start
   encoder's output (``rnn``: two unidirectional LSTMs, the Ego4D default; ``transformer``: the
   feature encoder applied twice, each output layer-normed); start / end logits from
   ``[encoder output, fused features]`` through a two-layer position-wise MLP.

Losses: cross-entropy on the start and end positions plus ``highlight_lambda`` x a weighted
binary cross-entropy on the highlight scores (positions inside the extended window weigh 2).
Decoding: the outer product of the start and end softmaxes, upper triangle (``end >= start``),
top-k spans.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import register_head

__all__ = ["VSLNet", "span_loss", "highlight_loss", "highlight_labels", "top_spans", "NEG_INF"]

NEG_INF = -1e30


def _masked(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits`` where ``mask`` is true, a very negative number elsewhere (softmax weight 0)."""
    return logits.masked_fill(~mask, NEG_INF)


class _PositionWise(nn.Linear):
    """A linear map over the last axis (the 1x1 convolutions of the reference code)."""


class _ConvBlock(nn.Module):
    """Pre-norm depthwise-separable 1-D convolutions with residuals, on ``[B, T, D]``."""

    def __init__(self, dim: int, kernel_size: int, layers: int, dropout: float):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(layers))
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False),
                          nn.Conv1d(dim, dim, 1), nn.ReLU())
            for _ in range(layers))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, conv in zip(self.norms, self.convs):
            x = x + self.drop(conv(norm(x).transpose(1, 2))).transpose(1, 2)
        return x


class _AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention and a position-wise output map, both residual."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be a multiple of num_heads={heads}")
        self.heads = heads
        self.norm_in, self.norm_out = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.q, self.k, self.v = _PositionWise(dim, dim), _PositionWise(dim, dim), _PositionWise(dim, dim)
        self.out = _PositionWise(dim, dim)
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.norm_in(x))
        q, k, v = self._split(self.q(h)), self._split(self.k(h)), self._split(self.v(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        attn = self.drop(torch.softmax(_masked(scores, mask[:, None, None, :]), dim=-1))
        ctx = (attn @ v).transpose(1, 2).reshape(x.shape)
        x = x + self.drop(ctx)
        return x + self.drop(self.out(self.drop(self.norm_out(x))))


class FeatureEncoder(nn.Module):
    """Position embedding + convolution block + self-attention block (shared by video and query)."""

    def __init__(self, dim: int, heads: int, max_len: int, kernel_size: int, conv_layers: int, dropout: float):
        super().__init__()
        self.position = nn.Embedding(max_len, dim)
        self.conv = _ConvBlock(dim, kernel_size, conv_layers, dropout)
        self.attention = _AttentionBlock(dim, heads, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.position.num_embeddings:
            raise ValueError(f"sequence of {x.shape[1]} positions is longer than max_pos_len="
                             f"{self.position.num_embeddings}; pool the features first (nlq.pool_features)")
        x = x + self.position(torch.arange(x.shape[1], device=x.device))[None]
        return self.attention(self.conv(x), mask)


class ContextQueryAttention(nn.Module):
    """Trilinear context-query attention fused to ``dim`` (VSLNet's CQA)."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.w_context = nn.Parameter(nn.init.xavier_uniform_(torch.empty(dim, 1)))
        self.w_query = nn.Parameter(nn.init.xavier_uniform_(torch.empty(dim, 1)))
        self.w_product = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, dim)))
        self.drop = nn.Dropout(dropout)
        self.fuse = _PositionWise(4 * dim, dim)

    def forward(self, c: torch.Tensor, q: torch.Tensor, c_mask: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        cd, qd = self.drop(c), self.drop(q)
        sim = (cd @ self.w_context) + (qd @ self.w_query).transpose(1, 2) + (cd * self.w_product) @ qd.transpose(1, 2)
        over_query = torch.softmax(_masked(sim, q_mask[:, None, :]), dim=2)      # [B, T, L]
        over_context = torch.softmax(_masked(sim, c_mask[:, :, None]), dim=1)    # [B, T, L]
        c2q = over_query @ q
        q2c = over_query @ over_context.transpose(1, 2) @ c
        return self.fuse(torch.cat([c, c2q, c * c2q, c * q2c], dim=2))


class QueryConcat(nn.Module):
    """Attention-pool the query to one vector and fuse it into every context position."""

    def __init__(self, dim: int):
        super().__init__()
        self.pool_weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(dim, 1)))
        self.fuse = _PositionWise(2 * dim, dim)

    def forward(self, c: torch.Tensor, q: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(_masked((q @ self.pool_weight).squeeze(2), q_mask), dim=1)  # [B, L]
        pooled = (alpha[:, :, None] * q).sum(dim=1, keepdim=True).expand(-1, c.shape[1], -1)
        return self.fuse(torch.cat([c, pooled], dim=2))


class _MaskedLSTM(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0] * mask[:, :, None].to(x.dtype)


class SpanPredictor(nn.Module):
    """Conditioned start / end logits (the end encoder reads the start encoder's output)."""

    def __init__(self, dim: int, kind: str, encoder_args: dict):
        super().__init__()
        self.kind = kind
        if kind == "rnn":
            self.start_encoder, self.end_encoder = _MaskedLSTM(dim), _MaskedLSTM(dim)
        elif kind == "transformer":
            self.encoder = FeatureEncoder(dim, **encoder_args)
            self.start_norm, self.end_norm = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        else:
            raise ValueError(f"predictor must be 'rnn' or 'transformer', got {kind!r}")
        self.start_head = nn.Sequential(_PositionWise(2 * dim, dim), nn.ReLU(), _PositionWise(dim, 1))
        self.end_head = nn.Sequential(_PositionWise(2 * dim, dim), nn.ReLU(), _PositionWise(dim, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "rnn":
            s = self.start_encoder(x, mask)
            e = self.end_encoder(s, mask)
        else:
            s = self.encoder(x, mask)
            e = self.encoder(s, mask)
            s, e = self.start_norm(s), self.end_norm(e)
        start = self.start_head(torch.cat([s, x], dim=2)).squeeze(2)
        end = self.end_head(torch.cat([e, x], dim=2)).squeeze(2)
        return _masked(start, mask), _masked(end, mask)


@register_head("vslnet", task="nlq")
class VSLNet(nn.Module):
    """VSLNet on frozen clip features ``[B, T, video_dim]`` and query token features
    ``[B, L, query_dim]``; ``forward`` returns ``(highlight [B, T], start logits [B, T],
    end logits [B, T])``, the logits masked outside each clip."""

    @dataclass
    class Options:
        dim: int = 128               # hidden size (Ego4D VSLNet default)
        num_heads: int = 8
        dropout: float = 0.3         # EgoHOD paper (the Ego4D default is 0.2)
        max_pos_len: int = 128       # clips with more features are mean-pooled to this many
        predictor: str = "rnn"       # rnn (Ego4D default) | transformer
        conv_layers: int = 4
        kernel_size: int = 7

    def __init__(self, video_dim: int, query_dim: int, options: "VSLNet.Options | None" = None):
        super().__init__()
        o = options or self.Options()
        if o.predictor not in ("rnn", "transformer"):
            raise ValueError(f"vslnet predictor must be 'rnn' or 'transformer', got {o.predictor!r}")
        self.options, self.video_dim, self.query_dim = o, int(video_dim), int(query_dim)
        enc = dict(heads=o.num_heads, max_len=o.max_pos_len, kernel_size=o.kernel_size,
                   conv_layers=o.conv_layers, dropout=o.dropout)
        self.video_in = nn.Sequential(nn.Dropout(o.dropout), _PositionWise(video_dim, o.dim))
        self.query_in = nn.Linear(query_dim, o.dim)
        self.encoder = FeatureEncoder(o.dim, **enc)
        self.cq_attention = ContextQueryAttention(o.dim, o.dropout)
        self.cq_concat = QueryConcat(o.dim)
        self.highlight = _PositionWise(o.dim, 1)
        self.predictor = SpanPredictor(o.dim, o.predictor, enc)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():  # Xavier for every linear / convolution, as the reference
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, video: torch.Tensor, video_mask: torch.Tensor, query: torch.Tensor,
                query_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        video_mask, query_mask = video_mask.bool(), query_mask.bool()
        v = self.encoder(self.video_in(video), video_mask)
        q = self.encoder(self.query_in(query), query_mask)
        x = self.cq_concat(self.cq_attention(v, q, video_mask, query_mask), q, query_mask)
        highlight = torch.sigmoid(_masked(self.highlight(x).squeeze(2), video_mask))
        start, end = self.predictor(x * highlight[:, :, None], video_mask)
        return highlight, start, end


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start: torch.Tensor,
              end: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the start and end positions (summed)."""
    return F.cross_entropy(start_logits, start) + F.cross_entropy(end_logits, end)


def highlight_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the highlight scores, positions inside the window weighted 2,
    averaged over the valid positions."""
    labels, mask = labels.to(scores.dtype), mask.to(scores.dtype)
    weights = 1.0 + labels
    bce = F.binary_cross_entropy(scores.clamp(1e-7, 1 - 1e-7), labels, reduction="none")
    return (bce * weights * mask).sum() / (mask.sum() + 1e-12)


def highlight_labels(start: np.ndarray, end: np.ndarray, lengths: np.ndarray, width: int,
                     extend: float = 0.1) -> np.ndarray:
    """``[B, width]`` 0/1 targets: the span ``[start, end]`` widened by ``round(extend * (end -
    start + 1))`` positions on each side, clipped to each clip's length."""
    out = np.zeros((len(start), width), dtype=np.float32)
    for i, (s, e, n) in enumerate(zip(start, end, lengths)):
        grow = int(round(extend * float(e - s + 1)))
        out[i, max(0, s - grow): min(e + grow, n - 1) + 1] = 1.0
    return out


def top_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most probable ``(start, end)`` index pairs with ``end >= start`` per row,
    best first: ``(starts [B, k], ends [B, k])``."""
    p = torch.softmax(start_logits, dim=1)[:, :, None] * torch.softmax(end_logits, dim=1)[:, None, :]
    p = torch.triu(p)
    t = p.shape[-1]
    k = min(k, t * (t + 1) // 2)
    flat = p.flatten(1).topk(k, dim=1).indices
    return flat // t, flat % t
