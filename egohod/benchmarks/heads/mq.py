"""``egohod head mq``: Ego4D Moment Queries with an ActionFormer-style detector on frozen clip
features (:mod:`.mq_head`; why not VSGN is said there and in ``docs/benchmarks.md``).

    egohod head mq data=DIR features=DIR out=DIR [key=value ...]

* ``data``: the official ``moments_train.json`` / ``moments_val.json`` (``videos -> clips ->
  annotations -> labels`` with ``label``, ``start_time``, ``end_time`` in clip seconds and
  ``primary``; as the Ego4D conversion script does, every primary label of every annotator is
  a moment, and a clip's length is ``video_end_sec - video_start_sec``).
* ``features``: ``<clip_uid>.npy`` / ``.pt`` ``[T, D]`` (:mod:`.clip_features`), feature ``i``
  centred at ``(i + feature_offset) / features_per_second`` seconds (ActionFormer's
  ``0.5 * num_frames / feat_stride`` = 0.5 for 16-frame windows every 16 frames).

The classes are the labels of the training moments (sorted); validation moments of other
labels stay in the ground truth (they count as missed, as any unseen class would) and are
listed in the results. Training crops clips longer than ``max_seq_len`` features to a random
window holding at least one moment (moments cut to less than ``trunc_thresh`` of their length
are dropped), seeded per epoch; every epoch runs (no checkpoint is picked on the validation
clips). Outputs in ``out``: ``config.json``, ``checkpoints/last.pt`` (resumable),
``ground_truth_val.json`` (the Ego4D clip-annotation layout ``{clip_uid: {subset,
annotations: [{label, start_time, end_time}]}}``), ``predictions.json`` (``{"results":
{clip_uid: [{label, segment, score}]}}``, best first) -- both read by ``egohod score mq`` -- and
``mq.json`` / ``mq.md`` with the scores of the existing MQ scorer.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING

from . import head_options
from .clip_features import EGO4D_FEATURES_PER_SECOND, ClipFeatures, check_feature_rate
from ...config import transport, transport_fields
from .common import (HeadConfigError, HeadDataError, HeadRun, compose_config, features_provenance,
                     read_annotation_json, seed_everything)
from .mq_head import ActionFormerHead, assign_targets, decode, detection_losses  # registers "actionformer"

__all__ = ["MqConfig", "load_mq_config", "MqClip", "read_moments", "run_mq"]


@dataclass
class MqConfig:
    data: str = MISSING                        # folder with the official moments JSON files
    features: str = MISSING                    # folder of <clip_uid>.npy / .pt [T, D]
    out: str = MISSING
    train_file: str = "moments_train.json"
    val_file: str = "moments_val.json"
    features_per_second: float = EGO4D_FEATURES_PER_SECOND
    feature_offset: float = 0.5                # a feature's centre, in features from its start
    trust_pickle: bool = False
    head: Any = MISSING                        # configs/head/mq/<name>.yaml, checked against its Options
    epochs: int = 15                           # ActionFormer Ego4D: 5 warm-up + 10 cosine epochs
    warmup_epochs: int = 5
    batch: int = 2
    lr: float = 1e-4
    weight_decay: float = 0.05
    clip_norm: float = 1.0
    init_loss_norm: float = 100.0              # start of the moving average of positives per batch
    trunc_thresh: float = 0.3
    pre_nms_thresh: float = 0.001
    pre_nms_topk: int = 5000
    min_duration: float = 0.05                 # features
    nms_sigma: float = 0.9
    min_score: float = 0.001
    max_segments: int = 2000                   # detections kept per clip
    missing_features: str = "error"            # error | skip
    seed: int = 0
    device: str = transport("auto")            # transport(): may differ when a run is resumed
    progress: bool = transport(True)
    overwrite: bool = transport(False)


def load_mq_config(argv: list[str]) -> MqConfig:
    """``configs/head/mq.yaml`` + ``head=<name>`` (``configs/head/mq/<name>.yaml``) + overrides."""
    cfg = compose_config("mq", MqConfig, argv, select={"head": "mq@head"})
    _validate(cfg)
    return cfg


def _validate(cfg: MqConfig) -> None:
    if cfg.missing_features not in ("error", "skip"):
        raise HeadConfigError(f"missing_features must be 'error' or 'skip', got {cfg.missing_features!r}")
    if cfg.batch < 1 or cfg.epochs < 0 or cfg.warmup_epochs < 0 or cfg.max_segments < 1 or cfg.pre_nms_topk < 1:
        raise HeadConfigError("batch, max_segments and pre_nms_topk must be >= 1; epochs and warmup_epochs >= 0")
    if cfg.lr <= 0 or cfg.features_per_second <= 0 or cfg.nms_sigma <= 0:
        raise HeadConfigError("lr, features_per_second and nms_sigma must be positive")


# ----------------------------------------------------------------------------- annotations

@dataclass(frozen=True)
class MqClip:
    clip_uid: str
    duration: float
    moments: tuple            # ((label, start, end), ...) in clip seconds


def read_moments(path: str | Path) -> list[MqClip]:
    """Clips of an official moments JSON with their primary moments."""
    path = Path(path)
    data = read_annotation_json(path, "MQ annotation")
    if not isinstance(data, dict) or "videos" not in data:
        raise HeadDataError(f"{path}: expected the official layout {{'videos': [{{'clips': [...]}}]}}")
    clips: dict[str, MqClip] = {}
    for video in data["videos"]:
        for clip in video.get("clips", []):
            uid = clip.get("clip_uid")
            where = f"{path}: clip {uid}"
            try:
                duration = float(clip["video_end_sec"]) - float(clip["video_start_sec"])
                moments = tuple((str(lab["label"]), float(lab["start_time"]), float(lab["end_time"]))
                                for ann in clip.get("annotations", []) for lab in ann.get("labels", [])
                                if lab.get("primary", True))
            except (KeyError, TypeError, ValueError) as e:
                raise HeadDataError(f"{where}: malformed entry ({type(e).__name__}: {e})") from None
            if uid is None or duration <= 0:
                raise HeadDataError(f"{where}: needs a clip_uid and video_end_sec > video_start_sec")
            bad = [m for m in moments if m[2] < m[1]]
            if bad:
                raise HeadDataError(f"{where}: moment {bad[0]} ends before it starts")
            if moments:  # clips without moments are dropped, as the Ego4D conversion does
                clips[str(uid)] = MqClip(str(uid), duration, moments)
    if not clips:
        raise HeadDataError(f"{path}: no clip with primary moments")
    return list(clips.values())


# ----------------------------------------------------------------------------- samples

@dataclass
class MqSamples:
    clips: list[MqClip]
    features: list[np.ndarray]                 # [T, D] per clip
    segments: list[np.ndarray]                 # [N, 2] grid units
    labels: list[np.ndarray]                   # [N] class ids (-1: a label the head does not know)
    skipped: list[str] = field(default_factory=list)


def build_samples(clips: list[MqClip], feats: ClipFeatures, classes: dict[str, int], cfg: MqConfig,
                  what: str) -> MqSamples:
    fps = cfg.features_per_second
    skipped = []
    if cfg.missing_features == "error":
        feats.require([c.clip_uid for c in clips], what)
    else:
        skipped = feats.missing([c.clip_uid for c in clips])
        clips = [c for c in clips if c.clip_uid not in set(skipped)]
        if not clips:
            raise HeadDataError(f"no clip of {what} has features in {feats.root}")
    out = MqSamples(clips, [], [], [], skipped)
    for c in clips:
        x = feats[c.clip_uid]
        expected = math.ceil(c.duration * fps - 1e-9)
        if x.shape[0] > expected + 2:
            raise HeadDataError(f"clip {c.clip_uid}: {x.shape[0]} features for a {c.duration:.2f} s clip (expected "
                                f"about {expected} at {fps:.4f}/s): the features are at another rate or of another "
                                "clip; set features_per_second or re-extract")
        end = max(m[2] for m in c.moments)
        if end > (x.shape[0] + 1) / fps:
            raise HeadDataError(f"clip {c.clip_uid}: its {x.shape[0]} features cover {x.shape[0] / fps:.2f} s but a "
                                f"moment ends at {end:.2f} s: the features are shorter than the annotated window")
        seg = np.array([[m[1], m[2]] for m in c.moments], dtype=np.float32) * fps - cfg.feature_offset
        out.features.append(x)
        out.segments.append(seg)
        out.labels.append(np.array([classes.get(m[0], -1) for m in c.moments], dtype=np.int64))
    return out


def _crop(x: np.ndarray, seg: np.ndarray, lab: np.ndarray, max_len: int, thresh: float, rng) -> tuple:
    """A random ``max_len`` window of a longer clip keeping the moments it holds at least
    ``thresh`` of (cut to the window); tries a few windows for one that holds a moment."""
    if x.shape[0] <= max_len:
        return x, seg, lab
    for _ in range(10):
        a = int(rng.integers(0, x.shape[0] - max_len + 1))
        s = np.clip(seg - a, 0, max_len)
        inside = (s[:, 1] - s[:, 0]) / np.maximum(seg[:, 1] - seg[:, 0], 1e-6)
        keep = inside >= thresh
        if keep.any():
            return x[a:a + max_len], s[keep], lab[keep]
    return x[a:a + max_len], s[keep], lab[keep]


def collate(items: list[tuple], divisor: int) -> dict:
    """Pad ``[(x [T, D], segments, labels), ...]`` to a common multiple of ``divisor``."""
    import torch

    t = max(x.shape[0] for x, _, _ in items)
    t = -(-t // divisor) * divisor
    video = np.zeros((len(items), t, items[0][0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(items), t), dtype=bool)
    for i, (x, _, _) in enumerate(items):
        video[i, :len(x)], mask[i, :len(x)] = x, True
    return {"video": torch.from_numpy(video), "mask": torch.from_numpy(mask),
            "segments": [torch.from_numpy(np.asarray(s, dtype=np.float32)) for _, s, _ in items],
            "labels": [torch.from_numpy(np.asarray(lab, dtype=np.int64)) for _, _, lab in items]}


# ----------------------------------------------------------------------------- training

def _optimizer(model, cfg: MqConfig, steps_per_epoch: int):
    """AdamW (no decay on biases, norms, scales); linear warm-up then cosine decay, per step."""
    import torch

    norms = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or id(p) in norms or name == "scales" else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    warm = cfg.warmup_epochs * steps_per_epoch
    total = max(1, cfg.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class _Trainer:
    """The per-step update and what it carries between steps (the positives' moving average)."""

    def __init__(self, model, optimizer, scheduler, cfg: MqConfig, device):
        self.model, self.optimizer, self.scheduler, self.cfg, self.device = model, optimizer, scheduler, cfg, device
        self.normalizer = cfg.init_loss_norm

    def step(self, batch: dict) -> float:
        import torch

        model = self.model
        outputs = model(batch["video"].to(self.device), batch["mask"].to(self.device))
        points = model.points([o[0].shape[1] for o in outputs], self.device)
        targets = [assign_targets(points, s.to(self.device), lab.to(self.device), model.num_classes,
                                  model.options.center_radius) for s, lab in zip(batch["segments"], batch["labels"])]
        cls_t = torch.stack([t[0] for t in targets])
        reg_t = torch.stack([t[1] for t in targets])
        n_pos = int(((cls_t.sum(-1) > 0) & torch.cat([o[2] for o in outputs], 1)).sum())
        self.normalizer = 0.9 * self.normalizer + 0.1 * max(n_pos, 1)
        cls_loss, reg_loss, _ = detection_losses(outputs, cls_t, reg_t, self.normalizer)
        loss = cls_loss + reg_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())


def predict(model, samples: MqSamples, class_names: list[str], cfg: MqConfig, device) -> dict:
    """``{clip_uid: [{label, segment [s, e] seconds, score}, ...]}``, best first per clip."""
    import torch
    from tqdm import tqdm

    model.eval()
    results = {}
    fps, off = cfg.features_per_second, cfg.feature_offset
    with torch.no_grad():
        for i, clip in enumerate(tqdm(samples.clips, desc="mq predict", unit="clip", disable=not cfg.progress)):
            b = collate([(samples.features[i], samples.segments[i], samples.labels[i])], model.divisor)
            outputs = model(b["video"].to(device), b["mask"].to(device))
            dets = decode(outputs, 0, pre_nms_thresh=cfg.pre_nms_thresh, pre_nms_topk=cfg.pre_nms_topk,
                          min_duration=cfg.min_duration, nms_sigma=cfg.nms_sigma, min_score=cfg.min_score,
                          max_segments=cfg.max_segments)
            results[clip.clip_uid] = [
                {"label": class_names[c], "segment": [float(np.clip((s + off) / fps, 0, clip.duration)),
                                                      float(np.clip((e + off) / fps, 0, clip.duration))],
                 "score": score} for c, s, e, score in dets]
    return results


def ground_truth_json(clips: list[MqClip], subset: str) -> dict:
    """The Ego4D clip-annotation layout that ``egohod score mq`` reads."""
    return {c.clip_uid: {"subset": subset, "duration": c.duration,
                         "annotations": [{"label": lab, "start_time": s, "end_time": e} for lab, s, e in c.moments]}
            for c in clips}


def run_mq(cfg: MqConfig) -> dict:
    """Train the detector on the train clips, predict and score the validation clips."""
    from tqdm import tqdm

    from ...device import resolve_device
    from ...fileio import atomic_write_json

    _validate(cfg)
    options = head_options(str(cfg.head.get("name")), cfg.head, task="mq")
    data = Path(cfg.data)
    train_clips, val_clips = read_moments(data / cfg.train_file), read_moments(data / cfg.val_file)
    class_names = sorted({m[0] for c in train_clips for m in c.moments})
    classes = {n: i for i, n in enumerate(class_names)}
    rate = check_feature_rate(cfg.features, cfg.features_per_second)
    device = resolve_device(cfg.device)
    provenance = features_provenance(cfg.features)
    config = dataclasses.asdict(cfg)
    t0 = time.time()
    with HeadRun(cfg.out, config, what="egohod head mq", transport=transport_fields(MqConfig), overwrite=cfg.overwrite) as run:
        feats = ClipFeatures(cfg.features, trust_pickle=cfg.trust_pickle)
        train = build_samples(train_clips, feats, classes, cfg, cfg.train_file)
        val = build_samples(val_clips, feats, classes, cfg, cfg.val_file)
        seed_everything(cfg.seed)
        model = ActionFormerHead(feats.dim, len(class_names), options).to(device)
        steps = math.ceil(len(train.clips) / cfg.batch)
        optimizer, scheduler = _optimizer(model, cfg, steps)
        trainer = _Trainer(model, optimizer, scheduler, cfg, device)
        first_epoch, losses, meta = run.resume_training(model, optimizer, scheduler)
        if meta:
            trainer.normalizer = float(meta["normalizer"])
        for epoch in range(first_epoch, cfg.epochs):
            model.train()
            rng = np.random.default_rng([cfg.seed, epoch])
            order = rng.permutation(len(train.clips))
            total = 0.0
            batches = [order[i:i + cfg.batch] for i in range(0, len(order), cfg.batch)]
            for idx in tqdm(batches, desc=f"mq epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                            disable=not cfg.progress, leave=False):
                items = [_crop(train.features[k], train.segments[k], train.labels[k], options.max_seq_len,
                               cfg.trunc_thresh, rng) for k in idx]
                items = [(x, s[lab >= 0], lab[lab >= 0]) for x, s, lab in items]
                total += trainer.step(collate(items, model.divisor))
            losses.append(total / len(batches))
            run.save_training(model, optimizer, scheduler, epoch + 1, losses, normalizer=trainer.normalizer,
                              head="actionformer", classes=class_names, input_dim=feats.dim)

        gt_path, pred_path = run.path("ground_truth_val.json"), run.path("predictions.json")
        atomic_write_json(gt_path, ground_truth_json(val.clips, "val"))
        atomic_write_json(pred_path, {"version": "1.0", "results": predict(model, val, class_names, cfg, device),
                                      "external_data": {}})
        metrics = _score_files(pred_path, gt_path)
        unseen = sorted({m[0] for c in val.clips for m in c.moments} - set(class_names))
        record = {
            "benchmark": "ego4d-mq", "head": "actionformer", "metrics": metrics,
            "encoder": provenance["encoder"], "weights": provenance["weights"],
            "random_weights": provenance["random_weights"], "features_per_second": rate or cfg.features_per_second,
            "classes": len(class_names), "val_labels_not_in_train": unseen, "epochs_trained": len(losses),
            "train_losses": losses, "train_clips": len(train.clips), "val_clips": len(val.clips),
            "skipped_clips": train.skipped + val.skipped, "predictions": str(pred_path),
            "ground_truth": str(gt_path), "elapsed_s": round(time.time() - t0, 3), "config": config}
        label = "actionformer" + (" (RANDOM WEIGHTS)" if record["random_weights"] else "")
        row = {"benchmark": "ego4d-mq", "head": label, "features": provenance["encoder"], **metrics}
        js, md = run.write_results("mq", {**record, "table_row": row}, [row])
        record.update(table_row=row, files={"results": str(js), "table": str(md)})
    return record


def _score_files(pred_path: Path, gt_path: Path) -> dict:
    """The files as ``egohod score mq`` reads them, scored by the existing MQ scorer."""
    from ..scorers import mq_scores

    gt = json.loads(gt_path.read_text(encoding="utf-8"))
    preds = json.loads(pred_path.read_text(encoding="utf-8"))["results"]
    return mq_scores({v: [(a["label"], float(a["start_time"]), float(a["end_time"])) for a in d["annotations"]]
                      for v, d in gt.items()},
                     {v: [(r["label"], float(r["segment"][0]), float(r["segment"][1]), float(r["score"])) for r in rows]
                      for v, rows in preds.items()})
