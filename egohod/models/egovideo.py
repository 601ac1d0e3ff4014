"""EgoVideo B / L (and the tiny test variant): a joint space-time ViT, a CLIP text tower, the
motion adapter and the dual-path (4-frame + 16-frame) co-training forward.

Public contract of :class:`EgoVideo` (what ``egohod.create_model`` returns)::

    model.encode_video(video, normalize=False)   # float [B, 3, T, H, W], CLIP-normalised -> [B, E]
    model.encode_text(tokens, normalize=False)   # LongTensor [B, 77] (CLIP BPE)       -> [B, E]
    model.encode_video_dual(fast, slow)          # 4-frame + 16-frame clips            -> [B, E]
    model(video, tokens)                         # {"video", "text", "logit_scale"} (normalised)
    model.visual / model.textual / model.logit_scale / model.input_spec / model.embed_dim
    model.set_grad_checkpointing(True)
    model.visual.forward_features(video)         # [B, 1 + T*g*g, D] tokens after ln_post
    model.visual.forward_intermediates(video)    # (final tokens, [per-block tokens])

Architecture (REFERENCE.md section 2 and the upstream OpenRobotLab/EgoHOD model code):
patches are embedded by a bias-free Linear over flattened ``3 x p x p`` patches
(``visual.conv1.weight`` ``[D, 3*p*p]``), a CLS token is prepended, the spatial position
embedding is tiled over frames and a learned ``temporal_embedding`` ``[T, D]`` (zero-init) is
added per frame (linearly interpolated along the frame axis, ``align_corners=False``, for another
frame count). ``ln_pre`` -> blocks -> CLS -> ``ln_post`` -> ``image_projection``. Vision layer
norms use eps 1e-6, text layer norms eps 1e-5; both towers use exact GELU. Text: causal CLIP
transformer, pooled at the EOT token (highest token id), ``text_projection``.

Dual path (``encode_video_dual``), as in the paper's figure and the upstream slow-fast model:

* fast path: the ``T``-frame clip runs through the backbone *without* the adapter, with
  gradients (the backbone is trained by this path and by nothing else);
* slow path: the ``lambda*T``-frame clip is embedded and every block's attention + MLP runs
  with the shared backbone weights *without gradient*; after each block the block's motion
  adapter runs *with* gradient. ``ln_post`` and ``image_projection`` are applied with gradient
  (upstream does the same);
* ``concat(slow, fast)`` (slow first, as upstream) -> ``slowfast_projection`` ``[2E, E]``.

``slow_grad`` (a field of :class:`EgoVideoConfig`, ``create_model(name, slow_grad=...)``, so the
plain ``model(video, tokens, video_slow)`` forward that DDP/FSDP call uses it; a call to
``encode_video_dual(..., slow_grad=...)`` may override it) chooses how "without gradient" is
realised:

* ``"frozen"`` (default): the slow path's blocks use *detached* weights, so no gradient from the
  slow path reaches any backbone weight, while activations stay differentiable, so every
  adapter except the last one is trained through the later blocks (the last block's adapter
  only changes patch tokens after the final attention, which never reach the CLS output).
  Costs the activation memory of the 16-frame backbone (use ``set_grad_checkpointing``).
* ``"no_grad"``: bit-for-bit the upstream code: each block's attention + MLP runs under
  ``torch.no_grad()``, which cuts the graph after every block. Combined with CLS pooling this
  gives **zero gradient to every adapter** (measured on the upstream code: see
  ``tests/models/test_upstream_parity.py``); only ``ln_post``, ``image_projection`` and
  ``slowfast_projection`` learn from the slow path. Kept for parity with upstream.

Which parameters train is chosen with :meth:`EgoVideo.set_trainable` / :meth:`EgoVideo.param_groups`
(stages ``"contrastive"``, ``"cotrain"``, ``"adapter"``; ``logit_scale`` is frozen in all, as in
the released configs).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Transformer
from .spec import InputSpec
from .towers import VideoTextTowers

SlowGrad = Literal["no_grad", "frozen"]


@dataclass(frozen=True)
class EgoVideoConfig:
    """Architecture of an EgoVideo variant (B/L/tiny)."""

    image_size: int = 224
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    num_frames: int = 4
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408
    embed_dim: int = 512
    mlp_ratio: float = 4.0
    vision_ln_eps: float = 1e-6
    text_ln_eps: float = 1e-5
    adapter: bool = True
    # how the dual path's slow clip runs the shared backbone without gradient (module docstring);
    # a training choice with no weights of its own: create_model(name, slow_grad="no_grad")
    slow_grad: SlowGrad = "frozen"

    def __post_init__(self):
        if self.slow_grad not in ("no_grad", "frozen"):
            raise ValueError(f"slow_grad must be 'no_grad' or 'frozen'; got {self.slow_grad!r}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def to_dict(self) -> dict:
        return asdict(self)


def interpolate_temporal_embedding(te: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Resample a ``[T, D]`` temporal embedding to ``[num_frames, D]``.

    Bilinear over the ``(frame, channel)`` plane with ``align_corners=False``: since the channel
    axis keeps its size this is linear interpolation along frames (edge frames clamp).
    """
    if te.shape[0] == num_frames:
        return te
    return F.interpolate(te[None, None], size=(num_frames, te.shape[1]), mode="bilinear",
                         align_corners=False)[0, 0]


class VideoVisionTransformer(nn.Module):
    """Joint space-time ViT. Input ``[B, 3, T, H, W]`` (CLIP-normalised), output ``[B, E]``."""

    def __init__(self, cfg: EgoVideoConfig):
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size {cfg.image_size} not divisible by patch_size {cfg.patch_size}")
        d, p = cfg.vision_width, cfg.patch_size
        self.image_size, self.patch_size, self.width = cfg.image_size, p, d
        self.grid = (cfg.grid, cfg.grid)
        self.num_frames = cfg.num_frames
        self.output_dim = cfg.embed_dim
        self.conv1 = nn.Linear(3 * p * p, d, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.positional_embedding = nn.Parameter(torch.randn(cfg.grid * cfg.grid + 1, d) * 0.02)
        self.temporal_embedding = nn.Parameter(torch.zeros(cfg.num_frames, d))
        self.ln_pre = nn.LayerNorm(d, eps=cfg.vision_ln_eps)
        self.transformer = Transformer(d, cfg.vision_layers, cfg.vision_heads, cfg.mlp_ratio,
                                       cfg.vision_ln_eps, adapter=cfg.adapter)
        self.ln_post = nn.LayerNorm(d, eps=cfg.vision_ln_eps)
        self.image_projection = nn.Parameter(torch.randn(d, cfg.embed_dim) * d ** -0.5)
        nn.init.trunc_normal_(self.conv1.weight, std=0.02)

    @property
    def has_adapter(self) -> bool:
        return self.transformer.resblocks[0].adapter is not None

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.grad_checkpointing = enable

    # -- embedding ---------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"video must be [B, 3, T, H, W]; got shape {tuple(x.shape)}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"video frames must be {self.image_size}x{self.image_size} (the variant's image_size); "
                f"got {x.shape[-2]}x{x.shape[-1]}. Resize/crop first (egohod.create_transforms)."
            )
        if not x.is_floating_point():
            raise TypeError(f"video must be a float tensor (CLIP-normalised); got {x.dtype}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` -> tokens ``[B, 1 + T*gh*gw, D]`` with position/time embeddings and ln_pre."""
        self._check_input(x)
        b, c, t, h, w = x.shape
        p = self.patch_size
        gh, gw = h // p, w // p
        # each patch flattened in (channel, row, col) order; tokens ordered (frame, row, col)
        patches = x.reshape(b, c, t, gh, p, gw, p).permute(0, 2, 3, 5, 1, 4, 6).reshape(b, t * gh * gw, c * p * p)
        tokens = self.conv1(patches.to(self.conv1.weight.dtype))
        te = interpolate_temporal_embedding(self.temporal_embedding, t)
        pos = self.positional_embedding[1:].repeat(t, 1) + te.repeat_interleave(gh * gw, dim=0)
        cls_tok = (self.class_embedding + self.positional_embedding[0]).to(tokens.dtype).expand(b, 1, -1)
        tokens = torch.cat([cls_tok, tokens + pos.to(tokens.dtype)], dim=1)
        return self.ln_pre(tokens)

    # -- heads ---------------------------------------------------------------------------------
    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens after ``ln_post`` -> CLS projected to the joint space ``[B, E]``."""
        return tokens[:, 0] @ self.image_projection

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the last block and ``ln_post``: ``[B, 1 + T*gh*gw, D]`` (CLS first)."""
        return self.ln_post(self.transformer(self.embed(x)))

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] | int | None = None,
                              norm: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final ``ln_post`` tokens and the raw outputs of the blocks in ``indices``.

        ``indices``: block numbers (negative counts from the end), an int ``n`` for the last
        ``n`` blocks, or ``None`` for all. ``norm=True`` applies ``ln_post`` to them too.
        """
        n = self.transformer.layers
        if indices is None:
            take = list(range(n))
        elif isinstance(indices, int):
            take = list(range(n - indices, n))
        else:
            take = [i % n for i in indices]
        x = self.embed(x)
        inter = []
        for i in range(n):
            x = self.transformer.run_block(i, x)
            if i in take:
                inter.append(self.ln_post(x) if norm else x)
        return self.ln_post(x), inter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone without adapter (the 4-frame path): ``[B, 3, T, H, W]`` -> ``[B, E]``."""
        return self.forward_head(self.forward_features(x))

    def forward_slow(self, x: torch.Tensor, slow_grad: SlowGrad = "frozen") -> torch.Tensor:
        """The adapter path: shared backbone weights without gradient, adapters with gradient."""
        if not self.has_adapter:
            raise RuntimeError("this model was built without motion adapters (adapter=False)")
        if slow_grad not in ("no_grad", "frozen"):
            raise ValueError(f"slow_grad must be 'no_grad' or 'frozen'; got {slow_grad!r}")
        t = x.shape[2]
        with torch.no_grad():
            h = self.embed(x)
        for i, blk in enumerate(self.transformer.resblocks):
            if slow_grad == "no_grad":
                with torch.no_grad():
                    h = self.transformer.run_block(i, h)
            else:
                h = self.transformer.run_block(i, h, frozen=True)
            h = blk.adapter(h, t, self.grid)
        return self.forward_head(self.ln_post(h))


class TextTransformer(nn.Module):
    """CLIP text tower: tokens ``[B, L<=context]`` -> EOT-pooled, projected ``[B, E]``."""

    def __init__(self, cfg: EgoVideoConfig):
        super().__init__()
        w = cfg.text_width
        self.context_length, self.vocab_size, self.width = cfg.context_length, cfg.vocab_size, w
        self.token_embedding = nn.Embedding(cfg.vocab_size, w)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, w))
        self.transformer = Transformer(w, cfg.text_layers, cfg.text_heads, cfg.mlp_ratio, cfg.text_ln_eps)
        self.ln_final = nn.LayerNorm(w, eps=cfg.text_ln_eps)
        self.text_projection = nn.Parameter(torch.empty(w, cfg.embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = w ** -0.5 * (2 * cfg.text_layers) ** -0.5
        for blk in self.transformer.resblocks:
            nn.init.normal_(blk.attn.in_proj_weight, std=w ** -0.5)
            nn.init.normal_(blk.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(blk.mlp.c_fc.weight, std=(2 * w) ** -0.5)
            nn.init.normal_(blk.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=w ** -0.5)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.grad_checkpointing = enable

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-token features after ``ln_final``: ``[B, L, W]``."""
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"tokens must be an integer tensor [B, L]; got {tuple(tokens.shape)} {tokens.dtype}")
        if tokens.shape[1] > self.context_length:
            raise ValueError(f"tokens have length {tokens.shape[1]} > context_length {self.context_length}")
        x = self.token_embedding(tokens.long()) + self.positional_embedding[: tokens.shape[1]]
        return self.ln_final(self.transformer(x, causal=True))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(tokens)
        eot = tokens.argmax(dim=-1)
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection


TRAIN_STAGES = ("contrastive", "cotrain", "adapter")


class EgoVideo(VideoTextTowers):
    """Video + text towers in a 512-d joint space (see the module docstring for the contract)."""

    def __init__(self, cfg: EgoVideoConfig, input_spec: InputSpec | None = None, name: str = "egovideo"):
        super().__init__(cfg, input_spec, name, VideoVisionTransformer(cfg), TextTransformer(cfg))
        if cfg.adapter:
            self.slowfast_projection = nn.Parameter(torch.empty(2 * cfg.embed_dim, cfg.embed_dim))
            nn.init.trunc_normal_(self.slowfast_projection, std=(2 * cfg.embed_dim) ** -0.5)
        else:
            self.slowfast_projection = None

    # -- encoders ------------------------------------------------------------------------------
    def encode_video_dual(self, clip_fast: torch.Tensor, clip_slow: torch.Tensor, normalize: bool = False,
                          slow_grad: SlowGrad | None = None) -> torch.Tensor:
        """Co-training forward: ``concat(slow(adapter), fast(backbone)) @ slowfast_projection``.

        ``clip_fast`` ``[B, 3, T, H, W]`` (T=4) trains the backbone; ``clip_slow``
        ``[B, 3, lambda*T, H, W]`` (16 frames) runs the shared weights without gradient and the
        adapters with gradient (see ``slow_grad`` in the module docstring; ``None``: the model's
        ``cfg.slow_grad``).
        """
        if self.slowfast_projection is None:
            raise RuntimeError(f"{self.name} was built without the adapter (adapter=False); "
                               "encode_video_dual needs adapter=True")
        if clip_fast.shape[0] != clip_slow.shape[0]:
            raise ValueError(f"batch sizes differ: fast {clip_fast.shape[0]} vs slow {clip_slow.shape[0]}")
        slow = self.visual.forward_slow(clip_slow, slow_grad=self.cfg.slow_grad if slow_grad is None else slow_grad)
        fast = self.visual(clip_fast)
        z = torch.cat([slow, fast], dim=-1) @ self.slowfast_projection
        return F.normalize(z, dim=-1) if normalize else z

    # -- what trains ---------------------------------------------------------------------------
    def stage_trainable(self, stage: str) -> list[str]:
        """Names of the parameters that train in ``stage``.

        * ``"contrastive"``: both towers, no adapter, no ``slowfast_projection`` (the released
          no-adapter pretraining).
        * ``"cotrain"``: both towers + adapters + ``slowfast_projection`` (the paper's figure:
          4-frame backbone and text encoder trainable, adapters trainable).
        * ``"adapter"``: upstream's adapter stage: adapters, the three projections,
          ``visual.class_embedding`` and ``visual.temporal_embedding``; everything else frozen.

        ``logit_scale`` is frozen in every stage.
        """
        names = [n for n, _ in self.named_parameters()]
        if stage == "contrastive":
            keep = [n for n in names if ".adapter." not in n and n != "slowfast_projection"]
        elif stage == "cotrain":
            if not self.visual.has_adapter:
                raise RuntimeError("stage 'cotrain' needs a model built with adapter=True")
            keep = list(names)
        elif stage == "adapter":
            if not self.visual.has_adapter:
                raise RuntimeError("stage 'adapter' needs a model built with adapter=True")
            extra = {"visual.class_embedding", "visual.temporal_embedding", "visual.image_projection",
                     "textual.text_projection", "slowfast_projection"}
            keep = [n for n in names if ".adapter." in n or n in extra]
        else:
            raise ValueError(f"unknown stage {stage!r}; choose one of {TRAIN_STAGES}")
        return [n for n in keep if n != "logit_scale"]

    def set_trainable(self, stage: str) -> list[str]:
        """Set ``requires_grad`` for ``stage`` (see :meth:`stage_trainable`); returns the trainable names."""
        keep = set(self.stage_trainable(stage))
        for n, p in self.named_parameters():
            p.requires_grad_(n in keep)
        return sorted(keep)

    def param_groups(self, weight_decay: float = 0.01, stage: str | None = None) -> list[dict]:
        """AdamW groups over trainable parameters: no weight decay on biases, norms and other 1-d
        parameters (timm's rule). With ``stage``, calls :meth:`set_trainable` first."""
        if stage is not None:
            self.set_trainable(stage)
        decay, no_decay = [], []
        for n, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or n.endswith(".bias") else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def param_groups_for_stage(self, stage: str, weight_decay: float = 0.01) -> list[dict]:
        """``set_trainable(stage)`` then :meth:`param_groups` (ready for ``torch.optim.AdamW``)."""
        return self.param_groups(weight_decay, stage=stage)
