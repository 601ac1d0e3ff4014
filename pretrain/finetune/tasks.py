"""The model a task trains, its loss and its evaluation.

* **egtea** / **ek100-cls**: the video tower's CLS token after ``ln_post`` (width D, before the
  joint-space projection: LaViLa's classifier input), dropout, one linear head per label
  (EGTEA 106 actions; EK-100 verb 97 + noun 300). Loss: the sum over heads of the label-smoothed
  cross-entropy (LaViLa sums its heads' losses), on mixup/cutmix targets when enabled.
  Evaluation: logits averaged over the test views (each rank a share of the clips), scored by
  :func:`egohod.benchmarks.scorers.classification_scores` (EGTEA top-1 / top-5 / mean class
  accuracy) or :func:`~egohod.benchmarks.scorers.ek100_action_scores` (the official C1 scorer:
  verb / noun / action top-1 / top-5).
* **ek100-mir**: both towers (no adapter path), the max-margin ranking loss of
  :mod:`pretrain.finetune.losses`; evaluation is the zero-shot protocol's EK-100 MIR run on the
  saved weights (:func:`pretrain.validate.validate_ek100_mir`: mAP / nDCG on the test split).

Trainable: the backbone without motion adapters (``EgoVideo.set_trainable("contrastive")``);
classification also freezes the text tower and ``visual.image_projection`` (unused, and DDP
needs every trainable parameter in the graph). ``logit_scale`` stays frozen.
"""
from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from egohod.benchmarks.scorers import classification_scores, ek100_action_scores

from .losses import max_margin_ranking_loss, mix_batch, mixed_targets, soft_cross_entropy

__all__ = ["FinetuneModel", "param_groups", "make_loss_fn", "classifier_outputs", "score_classifier",
           "DEFAULT_METRIC"]

DEFAULT_METRIC = {"egtea": "top1", "ek100-cls": "action_top1", "ek100-mir": "ek100_mir_map_avg"}
HEAD_NAMES = {"egtea": ("action",), "ek100-cls": ("verb", "noun"), "ek100-mir": ()}


class FinetuneModel(nn.Module):
    """``encoder`` (an EgoVideo) + linear ``heads`` (empty for MIR)."""

    def __init__(self, encoder: nn.Module, num_classes: tuple[int, ...] = (), dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(encoder.visual.width, c) for c in num_classes)
        for h in self.heads:
            nn.init.trunc_normal_(h.weight, std=0.02)
            nn.init.zeros_(h.bias)
        encoder.set_trainable("contrastive")
        if num_classes:
            for n, p in encoder.named_parameters():
                if n.startswith("textual.") or n == "visual.image_projection":
                    p.requires_grad_(False)

    def forward(self, video: torch.Tensor, tokens: torch.Tensor | None = None):
        """MIR (``tokens`` given): ``(video [B, E], text [B, E])``; classification: logits per head."""
        if tokens is not None:
            return self.encoder.encode_video(video), self.encoder.encode_text(tokens)
        f = self.dropout(self.encoder.visual.forward_features(video)[:, 0])
        return [h(f) for h in self.heads]


def _layer_id(name: str, depth: dict[str, int]) -> tuple[str, int]:
    """(tower, layer): 0 for the embeddings, block i -> i + 1, depth + 1 for what follows the blocks."""
    m = re.match(r"encoder\.(visual|textual)\.transformer\.resblocks\.(\d+)\.", name)
    if m:
        return m.group(1), int(m.group(2)) + 1
    for tower, first in (("visual", ("conv1", "class_embedding", "positional_embedding", "temporal_embedding",
                                     "ln_pre")), ("textual", ("token_embedding", "positional_embedding"))):
        if name.startswith(f"encoder.{tower}."):
            return tower, 0 if name.split(".")[2] in first else depth[tower] + 1
    return "visual", depth["visual"] + 1  # heads, slowfast_projection


def param_groups(model: FinetuneModel, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """AdamW groups over the trainable parameters: no weight decay on biases and 1-d parameters
    (as :meth:`EgoVideo.param_groups`); with ``layer_decay`` < 1 each group carries ``lr_scale``
    = ``layer_decay ** (depth + 1 - layer)`` (per tower; heads 1), read by :func:`pretrain.optim.set_lr`."""
    depth = {"visual": len(model.encoder.visual.transformer.resblocks),
             "textual": len(model.encoder.textual.transformer.resblocks)}
    groups: dict[tuple, dict] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        tower, layer = _layer_id(n, depth)
        scale = layer_decay ** (depth[tower] + 1 - layer)
        wd = 0.0 if p.ndim <= 1 or n.endswith(".bias") else weight_decay
        g = groups.setdefault((scale, wd), {"params": [], "weight_decay": wd, "lr_scale": scale})
        g["params"].append(p)
    return list(groups.values())


def make_loss_fn(task: str, loss_cfg):
    """``loss_fn(model, batch, autocast) -> {"loss", <train accuracies>}`` for :func:`pretrain.step.train_step`."""
    names = HEAD_NAMES[task]

    def mir(model, batch, autocast):
        with autocast():
            v, t = model(batch["video"], batch["tokens"])
        w = batch["weight"] if loss_cfg.adaptive_margin else None
        return {"loss": max_margin_ranking_loss(v, t, loss_cfg.margin, w)}

    def classify(model, batch, autocast):
        video, labels = batch["video"], batch["labels"]
        video, lam, perm = mix_batch(video, loss_cfg.mixup, loss_cfg.cutmix)
        with autocast():
            logits = model(video)
        loss, out = 0.0, {}
        for k, (name, lg) in enumerate(zip(names, logits)):
            y = labels[:, k]
            target = y if lam == 1.0 else mixed_targets(y, lg.shape[-1], lam, perm)
            loss = loss + soft_cross_entropy(lg, target, loss_cfg.label_smoothing)
            out[f"acc_{name}"] = float((lg.argmax(-1) == y).float().mean())
        return {"loss": loss, **out}

    return mir if task == "ek100-mir" else classify


@torch.no_grad()
def classifier_outputs(model: FinetuneModel, loader, device, autocast, desc: str = "eval",
                       progress: bool = True) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(per head ``[N, C]`` logits averaged over each clip's views, ``[N, K]`` labels, ``[N]`` clip indices)."""
    from tqdm import tqdm

    was = model.training
    model.eval()
    scores: list[list[np.ndarray]] = [[] for _ in model.heads]
    labels, index = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        v = batch["video"].to(device)
        b, views = v.shape[:2]
        with autocast():
            logits = model(v.flatten(0, 1))
        for k, lg in enumerate(logits):
            scores[k].append(lg.float().reshape(b, views, -1).mean(1).cpu().numpy())
        labels.append(batch["labels"].numpy())
        index.append(batch["index"].numpy())
    model.train(was)
    return [np.concatenate(x) for x in scores], np.concatenate(labels), np.concatenate(index)


def score_classifier(task: str, scores: list[np.ndarray], labels: np.ndarray) -> dict:
    """The benchmark scorer of ``task`` on test-clip logits."""
    if task == "egtea":
        return classification_scores(scores[0], labels[:, 0])
    return ek100_action_scores(scores[0], scores[1], labels[:, 0], labels[:, 1])
