"""Action segmentation on frozen features: train a head per fold, predict, score.

    egohod head segmentation data=DIR features=DIR head=mstcn|asformer|linear split=1|2|3|4|all out=DIR \\
        [dataset=gtea|hoi4d] [feature_layout=auto|DT|TD] [feature_stride=1] [sample_rate=1] [select=last|holdout] \\
        [head.epochs=50 ...] [seed=0] [device=auto]

For each fold ``k``: train on ``splits/train.split<k>.bundle``, predict every video of
``test.split<k>.bundle`` into ``<out>/split<k>/predictions/<video>`` (MS-TCN's recognition
format), score them with :func:`egohod.benchmarks.scorers.segmentation_scores` (Acc, Edit,
F1@{10,25,50}, background excluded from Edit and F1) into ``<out>/split<k>/metrics.json``.

``<out>/metrics.json`` holds exactly ``acc``, ``edit``, ``f1@10``, ``f1@25``, ``f1@50``
(percent): the fold's, or with ``split=all`` the mean over the folds; ``<out>/segmentation.json``
and ``.md`` add every fold, the mean and the sample standard deviation.

Epoch choice never looks at the test fold: ``select=last`` (default) reports the last epoch;
``select=holdout`` holds out ``holdout`` of the training videos (seeded), trains on the rest
and keeps the epoch with the best mean of the five metrics on them.

A run owns ``out`` (:class:`~egohod.benchmarks.heads.common.HeadRun`): ``<out>/split<k>/last.pt``
is written after every epoch (weights, optimizer, scheduler and RNG state, the config), so an
interrupted run resumes where it stopped, and finished folds are not trained again.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import MISSING

from ...config import transport, transport_fields
from .common import HeadConfigError, HeadDataError, HeadRun, compose_config, features_provenance, seed_everything
from .segmentation_data import SegmentationVideo, load_split, read_bundle, read_mapping, upsample, write_recognition

__all__ = ["SegmentationConfig", "SegmentationDataset", "load_segmentation_config", "run_segmentation",
           "train_head", "predict_videos", "METRIC_KEYS"]

METRIC_KEYS = ("acc", "edit", "f1@10", "f1@25", "f1@50")
# settings renamed since (old -> new): accepted on the command line and read from older run folders.
# `layout` means the video folder layout in the other commands; here it was the feature orientation.
RENAMED = {"layout": "feature_layout"}


@dataclass
class SegmentationDataset:
    name: str = "custom"
    background: list[str] = field(default_factory=lambda: ["background"])  # left out of Edit and F1
    folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4])         # what split=all runs
    classes: Optional[list[str]] = None   # expected mapping.txt, in id order (checked when given)
    label_fps: Optional[float] = None     # frame rate of groundTruth/ (documents what extract must match)


@dataclass
class SegmentationConfig:
    data: str = MISSING
    features: str = MISSING
    out: str = MISSING
    split: str = "1"                       # a fold number, or "all"
    head: Any = MISSING                    # configs/head/segmentation/<name>.yaml, checked against its Options
    dataset: SegmentationDataset = field(default_factory=SegmentationDataset)
    feature_layout: str = "auto"           # auto | DT ([D, T], MS-TCN) | TD ([T, D], egohod extract); layout= before
    feature_dim: Optional[int] = None
    feature_stride: int = 1                # label frames per feature vector
    sample_rate: int = 1                   # keep every n-th feature (MS-TCN's sample_rate)
    select: str = "last"                   # last | holdout
    holdout: float = 0.15                  # fraction of training videos held out when select=holdout
    seed: int = 0
    device: str = transport("auto")            # transport(): may differ when a run is resumed
    progress: bool = transport(True)
    overwrite: bool = transport(False)


def load_segmentation_config(argv: list[str]) -> SegmentationConfig:
    """``configs/head/segmentation.yaml`` + ``head=<name>`` (``configs/head/segmentation/<name>.yaml``)
    + ``dataset=<preset>`` (``configs/head/dataset/<preset>.yaml``) + ``key=value`` overrides."""
    cfg = compose_config("segmentation", SegmentationConfig, argv, select={"head": "segmentation@head"},
                         renamed=RENAMED)
    if cfg.feature_layout not in ("auto", "DT", "TD"):
        raise HeadConfigError(f"feature_layout must be auto, DT or TD; got {cfg.feature_layout!r}")
    if cfg.select not in ("last", "holdout"):
        raise HeadConfigError(f"select must be last or holdout; got {cfg.select!r}")
    if not 0 < cfg.holdout < 1:
        raise HeadConfigError(f"holdout must be a fraction in (0, 1); got {cfg.holdout}")
    folds(cfg)
    return cfg


def folds(cfg: SegmentationConfig) -> list[int]:
    if str(cfg.split) == "all":
        return [int(k) for k in cfg.dataset.folds]
    try:
        return [int(cfg.split)]
    except ValueError:
        raise HeadConfigError(f"split must be a fold number or 'all'; got {cfg.split!r}") from None


# ----------------------------------------------------------------------------- training

def _batches(videos: list[SegmentationVideo], batch_size: int, order: list[int], device):
    """``(x [B, D, T], target [B, T], mask [B, 1, T])`` per batch, padded to the longest video."""
    import torch

    for i in range(0, len(order), batch_size):
        chunk = [videos[j] for j in order[i:i + batch_size]]
        T = max(v.features.shape[1] for v in chunk)
        D = chunk[0].features.shape[0]
        x = torch.zeros(len(chunk), D, T)
        y = torch.zeros(len(chunk), T, dtype=torch.long)
        m = torch.zeros(len(chunk), 1, T)
        for b, v in enumerate(chunk):
            t = v.features.shape[1]
            x[b, :, :t] = torch.from_numpy(v.features)
            y[b, :t] = torch.from_numpy(v.targets)
            m[b, :, :t] = 1
        yield x.to(device), y.to(device), m.to(device)


def train_step(model, optimizer, batch, options) -> float:
    """One update on one batch; returns the loss."""
    from .segmentation_head import segmentation_loss

    x, y, m = batch
    optimizer.zero_grad(set_to_none=True)
    loss = segmentation_loss(model(x, m), y, m, options.smooth_weight, options.smooth_clamp)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def predict_videos(model, videos: list[SegmentationVideo], device) -> list[np.ndarray]:
    """Class ids at the training rate (the last stage's argmax) for each video."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for v in videos:
            x = torch.from_numpy(v.features)[None].to(device)
            logits = model(x, torch.ones(1, 1, x.shape[-1], device=device))[-1]
            out.append(logits.argmax(1)[0].cpu().numpy())
    return out


def score_videos(pred_ids: list[np.ndarray], videos: list[SegmentationVideo], classes: list[str], step: int,
                 background: list[str]) -> tuple[dict, list[list[str]]]:
    """Scores (percent) of predictions at the training rate, upsampled to the label rate."""
    from ..scorers import segmentation_scores

    labels = [[classes[i] for i in upsample(p, step, len(v.labels))] for p, v in zip(pred_ids, videos)]
    scores = segmentation_scores(labels, [v.labels for v in videos], background=background)
    return {k: float(scores[k]) for k in METRIC_KEYS}, labels


def _selection_score(metrics: dict) -> float:
    vals = [metrics[k] for k in METRIC_KEYS if np.isfinite(metrics[k])]
    return float(np.mean(vals)) if vals else -np.inf


def train_head(run: HeadRun, fold_dir: str, model, train: list[SegmentationVideo], holdout: list[SegmentationVideo],
               classes: list[str], cfg: SegmentationConfig, device) -> dict:
    """Train ``model`` in place (resuming from ``<fold_dir>/last.pt``); returns the training
    record. With held-out videos the weights of the best epoch on them are loaded at the end."""
    import torch
    from tqdm import tqdm

    o = model.options
    opt = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=o.plateau_patience)
             if o.plateau_patience is not None else None)
    history, best, start = [], None, 0
    saved = run.load_checkpoint(f"{fold_dir}/last.pt")
    if saved is not None:
        sd, meta = saved
        model.load_state_dict(sd)
        opt.load_state_dict(meta["optimizer"])
        if sched is not None:
            sched.load_state_dict(meta["scheduler"])
        torch.set_rng_state(meta["rng"])
        if meta.get("cuda_rng") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(meta["cuda_rng"], device)
        history, best, start = meta["history"], meta.get("best"), int(meta["epoch"])
    step = cfg.feature_stride * cfg.sample_rate
    bar = tqdm(range(start, o.epochs), desc=f"{fold_dir} {model.head_name}", unit="epoch", disable=not cfg.progress,
               initial=start, total=o.epochs)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        losses = [train_step(model, opt, b, o) for b in _batches(train, o.batch_size, order.tolist(), device)]
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"]}
        if sched is not None:
            sched.step(record["loss"])
        if holdout:
            record["holdout"] = score_videos(predict_videos(model, holdout, device), holdout, classes, step,
                                             cfg.dataset.background)[0]
            if best is None or _selection_score(record["holdout"]) > best["score"]:
                best = {"epoch": epoch + 1, "score": _selection_score(record["holdout"])}
                run.save_checkpoint(f"{fold_dir}/best.pt", model, {"head": model.head_name, "epoch": epoch + 1})
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        run.save_checkpoint(f"{fold_dir}/last.pt", model, {
            "head": model.head_name, "task": "segmentation", "epoch": epoch + 1, "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None, "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "history": history, "best": best})
    if holdout and best is not None:
        model.load_state_dict(run.load_checkpoint(f"{fold_dir}/best.pt")[0])
    return {"history": history, "epoch_reported": best["epoch"] if holdout and best else o.epochs,
            "selection": cfg.select}


# ----------------------------------------------------------------------------- one fold, all folds

def _holdout_split(names: list[str], cfg: SegmentationConfig) -> tuple[list[str], list[str]]:
    if cfg.select != "holdout":
        return names, []
    rng = np.random.default_rng(cfg.seed)
    n = max(1, int(round(cfg.holdout * len(names))))
    if n >= len(names):
        raise HeadConfigError(f"select=holdout needs at least 2 training videos; the split has {len(names)}")
    held = set(rng.permutation(len(names))[:n].tolist())
    return [v for i, v in enumerate(names) if i not in held], [v for i, v in enumerate(names) if i in held]


def run_fold(run: HeadRun, k: int, cfg: SegmentationConfig, classes: list[str], device) -> dict:
    """Train, predict and score fold ``k``; a fold whose ``metrics.json`` exists is read back."""
    import torch

    from . import get_head_class, head_options

    fold_dir = f"split{k}"
    done = run.path(f"{fold_dir}/metrics.json")
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    data, feats = Path(cfg.data), Path(cfg.features)
    train_names = read_bundle(data / "splits" / f"train.split{k}.bundle")
    test_names = read_bundle(data / "splits" / f"test.split{k}.bundle")
    overlap = sorted(set(train_names) & set(test_names))
    if overlap:
        raise HeadDataError(f"split {k}: video(s) {overlap[:5]} are in both the train and the test bundle")
    fit_names, held_names = _holdout_split(train_names, cfg)
    videos = load_split(data, feats, fit_names + held_names + test_names, classes, layout=cfg.feature_layout,
                        feature_dim=cfg.feature_dim, feature_stride=cfg.feature_stride, sample_rate=cfg.sample_rate)
    fit, held, test = (videos[:len(fit_names)], videos[len(fit_names):len(train_names)],
                       videos[len(train_names):])
    name = cfg.head["name"]
    seed_everything(cfg.seed * 1000 + k)
    model = get_head_class(name, "segmentation")(fit[0].features.shape[0], len(classes),
                                                  head_options(name, cfg.head, "segmentation")).to(device)
    t0 = time.time()
    training = train_head(run, fold_dir, model, fit, held, classes, cfg, device)
    train_s = time.time() - t0
    pred_ids = predict_videos(model, test, device)
    metrics, labels = score_videos(pred_ids, test, classes, cfg.feature_stride * cfg.sample_rate,
                                   cfg.dataset.background)
    for v, lab in zip(test, labels):
        write_recognition(run.path(f"{fold_dir}/predictions/{v.name}"), lab)
    run.save_checkpoint(f"{fold_dir}/model.pt", model, {"head": name, "task": "segmentation", "classes": classes,
                                                       "input_dim": int(fit[0].features.shape[0])})
    record = {"fold": k, "train_videos": fit_names, "holdout_videos": held_names, "test_videos": test_names,
              "train_seconds": round(train_s, 3), "device": str(device), "parameters":
                  sum(p.numel() for p in model.parameters()), **training}
    from ...fileio import atomic_write_json

    atomic_write_json(run.path(f"{fold_dir}/training.json"), record)
    atomic_write_json(done, metrics)  # written last: its presence means the fold is finished
    return metrics


def aggregate(per_fold: dict[int, dict]) -> tuple[dict, dict]:
    """``(mean, sample std)`` over folds of each metric (std is NaN for one fold)."""
    arr = {k: np.array([m[k] for m in per_fold.values()], dtype=float) for k in METRIC_KEYS}
    mean = {k: float(np.mean(v)) for k, v in arr.items()}
    std = {k: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan") for k, v in arr.items()}
    return mean, std


def _check_classes(classes: list[str], cfg: SegmentationConfig) -> None:
    want = cfg.dataset.classes
    if want is not None and list(want) != classes:
        raise HeadDataError(f"{Path(cfg.data) / 'mapping.txt'} lists {classes}, but dataset={cfg.dataset.name} "
                            f"expects {list(want)}; use the preset's mapping or drop dataset=")
    missing = [b for b in cfg.dataset.background if b not in classes]
    if missing:
        raise HeadDataError(f"background class(es) {missing} are not in mapping.txt ({classes}); set "
                            "dataset.background=[...] to the names your mapping uses")


def run_segmentation(cfg: SegmentationConfig) -> dict:
    """Every fold of ``cfg.split``; returns the results record (also written to ``cfg.out``)."""
    from ...device import resolve_device
    from ..results import encoder_label

    try:
        device = resolve_device(cfg.device)
    except ValueError as e:
        raise HeadConfigError(str(e)) from None
    classes = read_mapping(Path(cfg.data) / "mapping.txt")
    _check_classes(classes, cfg)
    if not Path(cfg.features).is_dir():
        raise HeadDataError(f"features={cfg.features} is not a folder")
    prov = features_provenance(cfg.features)
    with HeadRun(cfg.out, dataclasses.asdict(cfg), what="egohod head segmentation", transport=transport_fields(SegmentationConfig), renamed=RENAMED,
                 overwrite=cfg.overwrite) as run:
        per_fold = {k: run_fold(run, k, cfg, classes, device) for k in folds(cfg)}
        mean, std = aggregate(per_fold)
        from ...fileio import atomic_write_json
        from ..results import json_safe

        atomic_write_json(run.path("metrics.json"), json_safe(mean))
        label = encoder_label(prov["encoder"], prov["weights"])
        rows = [{"split": str(k), "head": cfg.head["name"], "features": label, **m} for k, m in per_fold.items()]
        if len(per_fold) > 1:
            rows += [{"split": "mean", "head": cfg.head["name"], "features": label, **mean},
                     {"split": "std", "head": cfg.head["name"], "features": label, **std}]
        record = {"task": "segmentation", "dataset": cfg.dataset.name, "head": cfg.head["name"], "split": cfg.split,
                  "metrics": mean, "std": std, "per_fold": {str(k): m for k, m in per_fold.items()},
                  "features": prov, "random_weights": prov["random_weights"], "classes": classes,
                  "epoch_selection": cfg.select, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "config": dataclasses.asdict(cfg)}
        js, md = run.write_results("segmentation", record, rows,
                                   columns=["split", "head", "features", *METRIC_KEYS])
    return {**record, "results_json": str(js), "results_md": str(md), "metrics_json": str(run.path("metrics.json")),
            "table": rows}
