"""Ego-style filter: a 2-layer MLP on clip features that scores how egocentric a clip looks,
used to keep first-person-looking clips from web videos.

* ``features``: clip features from any egohod encoder (``egohod.load_encoder``) -> ``.npz`` with
  ``keys`` (clip keys) and ``features`` [N, D]; clips that cannot be read are listed in
  ``<out>.failures.csv`` with the reason.
* ``style-train``: labels CSV (``video_id,start_second,end_second,label`` with label 1 =
  egocentric, optional ``uid``) + features (an ``.npz`` or an encoder) -> a stratified, seeded
  held-out split, a standardised-input MLP trained with class-balanced BCE, accuracy and ROC AUC
  on both splits, saved with the model (``<out>`` and ``<out>.metrics.json``).
* ``style-apply``: clips CSV + features -> ``scores.csv`` (every row + ``ego_score``) and
  ``kept.csv`` (rows with score >= threshold, original columns); rows without features go to
  ``failures.csv``.

A clip's key is its ``uid`` when the CSV has one, else ``video_id:start:end`` (3 decimals).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.checkpoint_io import read_checkpoint_with_meta, write_checkpoint
from ..fileio import atomic_write_bytes, atomic_write_text

# the `format` entry of a style-filter checkpoint (files written before it had none)
STYLE_FILTER_FORMAT = "egohod-style-filter/1"


# ----------------------------------------------------------------------------- model
class StyleMLP(nn.Module):
    """Standardise -> Linear -> ReLU -> Dropout -> Linear -> logit."""

    def __init__(self, in_dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN with one class."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def stratified_split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices with the class ratio kept in both parts."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = max(1, int(round(holdout * len(idx)))) if len(idx) > 1 else 0
        held.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def train_classifier(x: np.ndarray, y: np.ndarray, hidden: int = 256, dropout: float = 0.1, epochs: int = 50,
                     lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64, seed: int = 0,
                     device: str = "cpu") -> StyleMLP:
    """Class-balanced BCE with AdamW; deterministic for a given seed on the CPU."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    model = StyleMLP(x.shape[1], hidden, dropout)
    model.mean.copy_(xt.mean(0))
    model.std.copy_(xt.std(0).clamp_min(1e-6))
    model.to(device).train()
    pos = float(yt.sum())
    pos_weight = torch.tensor((len(yt) - pos) / max(pos, 1.0), device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch_size):
            b = perm[i: i + batch_size]
            loss = loss_fn(model(xt[b].to(device)), yt[b].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: StyleMLP, x: np.ndarray, device: str = "cpu") -> np.ndarray:
    model.to(device).eval()
    return torch.sigmoid(model(torch.as_tensor(x, dtype=torch.float32, device=device))).cpu().numpy()


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    return {"n": int(len(y)), "positives": int(np.sum(y)), "accuracy": float(np.mean((p >= threshold) == (y > 0.5))),
            "auc": roc_auc(y, p)}


# ----------------------------------------------------------------------------- clips and features
def read_clip_rows(path: str | Path, need_label: bool = False) -> tuple[list[dict], list[str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CSV not found")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        need = ["video_id", "start_second", "end_second"] + (["label"] if need_label else [])
        miss = [c for c in need if c not in cols]
        if miss:
            raise ValueError(f"{path}: header {cols} lacks column(s) {miss}")
        rows = list(reader)
    for n, r in enumerate(rows, start=2):
        try:
            r["_start"], r["_end"] = float(r["start_second"]), float(r["end_second"])
        except ValueError:
            raise ValueError(f"{path}:{n}: start_second/end_second must be numbers, got "
                             f"{r['start_second']!r}, {r['end_second']!r}") from None
        if need_label:
            if r["label"].strip() not in ("0", "1"):
                raise ValueError(f"{path}:{n}: label must be 0 or 1 (1 = egocentric), got {r['label']!r}")
            r["_label"] = int(r["label"])
        r["_key"] = (r.get("uid") or "").strip() or f"{r['video_id']}:{r['_start']:.3f}:{r['_end']:.3f}"
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows, cols


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        if "keys" not in z.files or "features" not in z.files:
            raise ValueError(f"{path}: features file needs arrays 'keys' [N] and 'features' [N, D], has {z.files}")
        keys, feats = z["keys"], z["features"]
    if feats.ndim != 2 or len(keys) != len(feats):
        raise ValueError(f"{path}: 'features' must be [N, D] with N = len(keys), got {feats.shape} and {len(keys)} keys")
    return {str(k): feats[i] for i, k in enumerate(keys)}


def compute_features(rows: list[dict], encoder: str, checkpoint: str | None, videos: str, layout: str = "auto",
                     chunk_seconds: float = 15.0, num_frames: int | None = None, batch_size: int = 8,
                     device: str = "cpu", progress: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Features of each row's clip from a frozen egohod encoder; returns (features, failures)."""
    from tqdm import tqdm

    from .. import load_encoder
    from .clips import VideoSource
    from .types import Clip

    enc = load_encoder(encoder, checkpoint=checkpoint, num_frames=num_frames).to(device)
    src = VideoSource(videos, layout, chunk_seconds)
    feats: dict[str, np.ndarray] = {}
    fails: dict[str, str] = {}
    pending: list[tuple[str, np.ndarray]] = []

    def flush():
        groups: dict = {}
        for k, fr in pending:
            groups.setdefault(fr.shape, []).append((k, fr))
        for items in groups.values():
            with torch.no_grad():
                out = enc(torch.from_numpy(np.stack([fr for _, fr in items])).to(device)).float().cpu().numpy()
            for (k, _), f in zip(items, out):
                feats[k] = f
        pending.clear()

    for r in tqdm(rows, desc="features", unit="clip", disable=not progress):
        try:
            frames, _ = src.read(Clip(r["_key"], 0, r["video_id"], r["_start"], r["_end"], ""), enc.num_frames)
            pending.append((r["_key"], frames))
        except Exception as e:
            fails[r["_key"]] = f"{type(e).__name__}: {e}"[:400]
        if len(pending) >= batch_size:
            flush()
    flush()
    return feats, fails


def _features_for(cfg, rows) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    if cfg.features:
        return load_features(cfg.features), {}, f"file:{cfg.features}"
    if not cfg.encoder or not cfg.videos:
        raise ValueError("give features=FILE.npz, or encoder=NAME and videos=DIR to compute them")
    feats, fails = compute_features(rows, cfg.encoder, cfg.checkpoint, cfg.videos, cfg.layout, cfg.chunk_seconds,
                                    cfg.num_frames, device=cfg.device)
    return feats, fails, f"encoder:{cfg.encoder}"


def _failures_csv(fails: dict[str, str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["key", "reason"])
    w.writerows(sorted(fails.items()))
    return buf.getvalue()


# ----------------------------------------------------------------------------- commands
def features_main(cfg) -> dict:
    rows, _ = read_clip_rows(cfg.clips)
    feats, fails = compute_features(rows, cfg.encoder, cfg.checkpoint, cfg.videos, cfg.layout, cfg.chunk_seconds,
                                    cfg.num_frames, cfg.batch_size, cfg.device)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = [r["_key"] for r in rows if r["_key"] in feats]
    buf = io.BytesIO()
    np.savez(buf, keys=np.array(keys), features=np.stack([feats[k] for k in keys]) if keys else np.zeros((0, 0)))
    atomic_write_bytes(out, buf.getvalue())
    atomic_write_text(out.with_suffix(".failures.csv"), _failures_csv(fails))
    print(f"features: {len(keys)} clips -> {out} ({len(fails)} failed, see {out.with_suffix('.failures.csv')})")
    return {"ok": len(keys), "failed": len(fails)}


def train_main(cfg) -> dict:
    rows, _ = read_clip_rows(cfg.labels, need_label=True)
    feats, fails, source = _features_for(cfg, rows)
    missing = [r["_key"] for r in rows if r["_key"] not in feats and r["_key"] not in fails]
    if missing and cfg.features:
        raise KeyError(f"{cfg.features}: no features for {len(missing)} labelled clip(s), e.g. {missing[:5]}")
    usable = [r for r in rows if r["_key"] in feats]
    if len(usable) < 4:
        raise ValueError(f"only {len(usable)} labelled clips have features; need at least 4")
    x = np.stack([feats[r["_key"]] for r in usable]).astype(np.float32)
    y = np.array([r["_label"] for r in usable], dtype=np.float32)
    if len(np.unique(y)) < 2:
        raise ValueError(f"{cfg.labels}: labels must contain both classes (0 and 1)")
    tr, ho = stratified_split(y, cfg.holdout, cfg.seed)
    model = train_classifier(x[tr], y[tr], cfg.hidden, cfg.dropout, cfg.epochs, cfg.lr, cfg.weight_decay,
                             cfg.batch_size, cfg.seed, cfg.device)
    threshold = 0.5
    result = {"train": metrics(y[tr], predict(model, x[tr]), threshold),
              "heldout": metrics(y[ho], predict(model, x[ho]), threshold),
              "threshold": threshold, "feature_source": source, "in_dim": int(x.shape[1]),
              "failed_clips": len(fails)}
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from omegaconf import OmegaConf

    meta = {"format": STYLE_FILTER_FORMAT, "in_dim": int(x.shape[1]), "hidden": int(cfg.hidden),
            "dropout": float(cfg.dropout), "threshold": threshold, "metrics": result,
            "config": OmegaConf.to_container(cfg, resolve=True)}
    write_checkpoint(out, model.cpu().state_dict(), meta)
    atomic_write_text(out.with_name(out.name + ".metrics.json"), json.dumps(result, indent=1))
    if fails:
        atomic_write_text(out.with_name(out.name + ".failures.csv"), _failures_csv(fails))
    h = result["heldout"]
    print(f"style filter: {len(tr)} train / {len(ho)} held-out clips; held-out accuracy {h['accuracy']:.3f}, "
          f"AUC {h['auc']:.3f} -> {out}")
    return result


def load_classifier(path: str | Path, trust_pickle: bool = False) -> tuple[StyleMLP, dict]:
    """The classifier ``style-train`` wrote, and its meta (sizes, threshold, metrics, config), read
    with :func:`egohod.models.checkpoint_io.read_checkpoint_with_meta` (files written before the
    ``format`` entry load too; ``trust_pickle=True`` only for files you trust)."""
    state_dict, meta = read_checkpoint_with_meta(path, trust_pickle=trust_pickle)
    if not {"in_dim", "hidden", "dropout"} <= set(meta) or meta.get("format", STYLE_FILTER_FORMAT) != STYLE_FILTER_FORMAT:
        raise ValueError(f"{path} is not a style-filter model written by `egohod hod style-train` "
                         "(expected a dict with state_dict, in_dim, hidden, dropout)")
    model = StyleMLP(meta["in_dim"], meta["hidden"], meta["dropout"])
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), {**meta, "state_dict": state_dict}


def apply_main(cfg) -> dict:
    model, blob = load_classifier(cfg.model, trust_pickle=cfg.trust_pickle)
    threshold = float(cfg.threshold if cfg.threshold is not None else blob["threshold"])
    rows, cols = read_clip_rows(cfg.clips)
    feats, fails, _ = _features_for(cfg, rows)
    for r in rows:
        if r["_key"] not in feats and r["_key"] not in fails:
            fails[r["_key"]] = "no features for this clip in the features file"
    have = [r for r in rows if r["_key"] in feats]
    if have:
        x = np.stack([feats[r["_key"]] for r in have]).astype(np.float32)
        if x.shape[1] != blob["in_dim"]:
            raise ValueError(f"features are {x.shape[1]}-d but the filter {cfg.model} expects {blob['in_dim']}-d")
        for r, p in zip(have, predict(model, x, cfg.device)):
            r["_score"] = float(p)
    out = Path(cfg.out)
    scores, kept = io.StringIO(), io.StringIO()
    ws, wk = csv.writer(scores), csv.writer(kept)
    ws.writerow(cols + ["ego_score"])
    wk.writerow(cols)
    n_kept = 0
    for r in have:
        ws.writerow([r[c] for c in cols] + [f"{r['_score']:.5f}"])
        if r["_score"] >= threshold:
            wk.writerow([r[c] for c in cols])
            n_kept += 1
    atomic_write_text(out / "scores.csv", scores.getvalue())
    atomic_write_text(out / "kept.csv", kept.getvalue())
    atomic_write_text(out / "failures.csv", _failures_csv(fails))
    summary = {"clips": len(rows), "scored": len(have), "kept": n_kept, "failed": len(fails), "threshold": threshold}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    print(f"style filter: {len(rows)} clips, {len(have)} scored, {n_kept} kept (score >= {threshold:g}), "
          f"{len(fails)} without features -> {out}")
    return summary
