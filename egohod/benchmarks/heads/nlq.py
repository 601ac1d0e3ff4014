"""``egohod head nlq``: Ego4D Natural Language Queries with VSLNet on frozen clip features.

    egohod head nlq data=DIR features=DIR out=DIR [text_checkpoint=PATH] [key=value ...]

* ``data``: the official ``nlq_train.json`` / ``nlq_val.json`` (``videos -> clips ->
  annotations -> language_queries`` with ``clip_start_sec``, ``clip_end_sec``, ``query``;
  a clip's length is ``video_end_sec - video_start_sec``).
* ``features``: one ``[T, D]`` array per clip, ``<clip_uid>.npy`` or ``.pt``
  (:mod:`.clip_features`), ``features_per_second`` rows per second (1.875).
* Queries are encoded once by the frozen EgoVideo text tower (``text_encoder``,
  ``text_checkpoint``): its per-token states after the final layer norm, padding dropped. No
  GloVe or BERT is downloaded (the Ego4D baseline's word embeddings): the text side is the same
  model family as the video features. Without ``text_checkpoint`` the text tower has RANDOM
  WEIGHTS (said in the output).

Protocol (the Ego4D VSLNet baseline's, see ``docs/benchmarks.md``): a clip with more than
``max_pos_len`` features is mean-pooled to ``max_pos_len`` positions by :func:`pool_features`;
position ``k`` of ``n`` covers ``[k, k+1) * duration / n`` where ``duration`` is the clip's length
rounded up to whole features; the training span of a query is the ``(start, end)`` position pair
whose window has the highest IoU with the annotation (start floored, end ceiled to the feature
grid). Training runs every epoch to the end (no checkpoint is picked on the validation queries,
which are the reported ones); then the top ``topk`` windows of every validation query are written
as the challenge JSON and scored by the existing NLQ scorer
(:func:`egohod.benchmarks.scorers.nlq_scores_from_json`).

Outputs in ``out``: ``config.json``, ``checkpoints/last.pt`` (weights, optimizer, scheduler, RNG
state, epoch: a re-run resumes), ``predictions.json`` (challenge format), ``nlq.json`` /
``nlq.md`` (metrics, what the numbers are a function of, skipped queries).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import MISSING

from . import head_options
from .clip_features import EGO4D_FEATURES_PER_SECOND, ClipFeatures, check_feature_rate
from ...config import transport, transport_fields
from .common import (HeadConfigError, HeadDataError, HeadRun, compose_config, features_provenance,
                     read_annotation_json, seed_everything)
from .vslnet import VSLNet, highlight_labels, highlight_loss, span_loss, top_spans  # registers "vslnet"

__all__ = ["NlqConfig", "load_nlq_config", "NlqQuery", "read_nlq_queries", "pool_features", "window_to_span", "span_to_window",
           "clip_units", "encode_queries", "build_samples", "run_nlq"]


@dataclass
class NlqConfig:
    data: str = MISSING                        # folder with the official NLQ JSON files
    features: str = MISSING                    # folder of <clip_uid>.npy / .pt [T, D]
    out: str = MISSING                         # the run's folder (resumes when it holds this run)
    train_file: str = "nlq_train.json"
    val_file: str = "nlq_val.json"
    features_per_second: float = EGO4D_FEATURES_PER_SECOND
    text_encoder: str = "egovideo_b"           # EgoVideo model whose text tower encodes the queries
    text_checkpoint: Optional[str] = None      # None: RANDOM WEIGHTS text tower
    trust_pickle: bool = False                 # unpickle .pt features / checkpoint without the allowlist
    head: Any = MISSING                        # configs/head/nlq/<name>.yaml, checked against its Options
    epochs: int = 50                           # EgoHOD paper
    batch: int = 32
    lr: float = 3e-3                           # EgoHOD paper (Ego4D default 1e-4)
    weight_decay: float = 0.01                 # AdamW; none on biases and layer norms
    warmup_proportion: float = 0.0             # linear warm-up then linear decay to 0
    clip_norm: float = 1.0
    highlight_lambda: float = 5.0
    extend: float = 0.1                        # highlight window grows by this share of its length
    topk: int = 5                              # predicted windows per query
    missing_features: str = "error"            # error | skip (queries of clips without features)
    text_batch: int = 64
    seed: int = 0
    device: str = transport("auto")            # transport(): may differ when a run is resumed
    progress: bool = transport(True)
    overwrite: bool = transport(False)         # start again in a folder that holds a run


def load_nlq_config(argv: list[str]) -> NlqConfig:
    """``configs/head/nlq.yaml`` + ``head=<name>`` (``configs/head/nlq/<name>.yaml``, its keys as
    ``head.<key>=...``) + ``key=value`` overrides, checked."""
    cfg = compose_config("nlq", NlqConfig, argv, select={"head": "nlq@head"})
    _validate(cfg)
    return cfg


# ----------------------------------------------------------------------------- annotations

@dataclass(frozen=True)
class NlqQuery:
    clip_uid: str
    annotation_uid: str
    query_idx: int        # index in the annotation's language_queries (the challenge key)
    query: str
    start: float          # answer window, seconds from the clip start
    end: float
    clip_duration: float


def _need(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise HeadDataError(f"{where}: missing key {key!r}")
    return d[key]


def read_nlq_queries(path: str | Path) -> list[NlqQuery]:
    """The queries of an official NLQ JSON with their answer windows (queries without text are
    skipped, as the Ego4D baseline does; their ``query_idx`` keeps counting)."""
    path = Path(path)
    data = read_annotation_json(path, "NLQ annotation")
    out = []
    for v, video in enumerate(_need(data, "videos", str(path))):
        for clip in _need(video, "clips", f"{path}: videos[{v}]"):
            where = f"{path}: clip {clip.get('clip_uid', '?')}"
            uid = str(_need(clip, "clip_uid", where))
            if "video_start_sec" in clip and "video_end_sec" in clip:
                duration = float(clip["video_end_sec"]) - float(clip["video_start_sec"])
            else:
                duration = float(_need(clip, "clip_end_sec", where)) - float(_need(clip, "clip_start_sec", where))
            if duration <= 0:
                raise HeadDataError(f"{where}: clip length {duration} s is not positive")
            for ann in clip.get("annotations", []):
                ann_uid = str(_need(ann, "annotation_uid", where))
                for q, lq in enumerate(ann.get("language_queries", [])):
                    text = lq.get("query")
                    if not text:
                        continue
                    qw = f"{where}, annotation {ann_uid}, query {q}"
                    s, e = float(_need(lq, "clip_start_sec", qw)), float(_need(lq, "clip_end_sec", qw))
                    if e < s:
                        raise HeadDataError(f"{qw}: clip_end_sec {e} is before clip_start_sec {s}")
                    out.append(NlqQuery(uid, ann_uid, q, str(text), s, e, duration))
    if not out:
        raise HeadDataError(f"{path}: no language queries with text")
    return out


def canonical_query(text: str) -> str:
    """The Ego4D baseline's question form: stripped, trailing '?' removed, lower case, one '?'."""
    return text.strip(" ").strip("?").lower() + "?"


# ----------------------------------------------------------------------------- the time grid

def pool_features(x: np.ndarray, max_len: int) -> np.ndarray:
    """``[T, D]`` -> at most ``[max_len, D]``: position ``i`` is the mean of rows
    ``[b_i, b_{i+1})`` with ``b_i = round(i * T / max_len)`` (the last bounds clipped to ``T-1``),
    or row ``b_i`` alone when that range is empty (the Ego4D VSLNet rule)."""
    t = x.shape[0]
    if t <= max_len:
        return x
    bounds = np.round(np.arange(max_len + 1, dtype=np.float64) / max_len * t).astype(np.int64)
    bounds = np.minimum(bounds, t - 1)
    rows = [x[s:e].mean(axis=0) if s < e else x[s] for s, e in zip(bounds[:-1], bounds[1:])]
    return np.stack(rows).astype(x.dtype, copy=False)


def clip_units(duration: float, features_per_second: float) -> tuple[int, float]:
    """``(n, grid_duration)``: the features a clip of ``duration`` seconds spans, and that many
    features' worth of seconds (the clip length rounded up to whole features)."""
    n = max(1, math.ceil(duration * features_per_second - 1e-9))
    return n, n / features_per_second


def window_to_span(start: float, end: float, n: int, duration: float, features_per_second: float
                   ) -> tuple[int, int]:
    """Training target ``(s, e)`` of the window ``[start, end]`` on ``n`` positions over
    ``duration`` seconds: the pair with the highest IoU after snapping the window outwards to
    the feature grid. A window still of zero length (an instant on a grid line) maps to the
    position holding that instant."""
    s_t = math.floor(start * features_per_second + 1e-9) / features_per_second
    e_t = min(math.ceil(end * features_per_second - 1e-9) / features_per_second, duration)
    unit = duration / n
    if e_t - s_t <= 1e-9:
        k = min(n - 1, max(0, int(s_t / unit)))
        return k, k
    starts = np.arange(n) * unit
    ends = starts + unit
    inter = np.clip(np.minimum(ends[None, :], e_t) - np.maximum(starts[:, None], s_t), 0, None)
    union = np.maximum(ends[None, :], e_t) - np.minimum(starts[:, None], s_t)
    iou = np.where(ends[None, :] > starts[:, None], inter / np.maximum(union, 1e-12), -1.0)
    s, e = np.unravel_index(int(np.argmax(iou)), iou.shape)
    return int(s), int(e)


def span_to_window(s: int, e: int, n: int, duration: float) -> tuple[float, float]:
    """Seconds covered by positions ``s..e`` of ``n`` over ``duration``."""
    return s * duration / n, (e + 1) * duration / n


# ----------------------------------------------------------------------------- query text

def encode_queries(texts: list[str], encoder: str, checkpoint: str | None, device, *, seed: int = 0,
                   batch: int = 64, trust_pickle: bool = False, progress: bool = True) -> tuple[list[np.ndarray], str]:
    """Per-token features ``[L_i, W]`` (padding dropped) of each text from the frozen text tower
    of ``encoder``, and the weights they came from (``random:...`` without a checkpoint)."""
    import torch
    from tqdm import tqdm

    from ... import get_tokenizer
    from ...models import create_model

    kwargs = {"trust_pickle": True} if trust_pickle else {}
    model = create_model(encoder, checkpoint=checkpoint, seed=seed, **kwargs)
    weights = str(getattr(model, "weights", "unknown"))
    tower = model.textual.to(device).eval()
    del model
    tokenizer = get_tokenizer(encoder)
    out = []
    with torch.no_grad():
        for i in tqdm(range(0, len(texts), batch), desc="encode queries", unit="batch", disable=not progress):
            tokens = tokenizer(texts[i:i + batch])
            states = tower.forward_features(tokens.to(device)).float().cpu().numpy()
            mask = (tokens != 0).numpy()
            out += [s[m] for s, m in zip(states, mask)]
    return out, weights


# ----------------------------------------------------------------------------- samples

@dataclass
class NlqSamples:
    """Queries with their (pooled) clip features, query token features and targets."""

    queries: list[NlqQuery]
    video: dict[str, np.ndarray]               # clip_uid -> [n, D] (pooled)
    grid: dict[str, float]                     # clip_uid -> grid duration (s)
    text: list[np.ndarray]                     # per query [L, W]
    spans: np.ndarray                          # [N, 2] (start, end) position targets
    skipped: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)

    def attach_text(self, text_of: dict[str, np.ndarray]) -> None:
        self.text = [text_of[canonical_query(q.query)] for q in self.queries]


def build_samples(queries: list[NlqQuery], features: ClipFeatures, *, max_pos_len: int, features_per_second: float,
                  missing: str, what: str) -> NlqSamples:
    """Pair each query with its clip's features, checking they cover the clip and the window
    (``text`` is filled in later by :meth:`NlqSamples.attach_text`)."""
    clips = sorted({q.clip_uid for q in queries})
    skipped: list[dict] = []
    if missing == "error":
        features.require(clips, what)
    else:
        gone = set(features.missing(clips))
        skipped = [{"clip_uid": q.clip_uid, "annotation_uid": q.annotation_uid, "query_idx": q.query_idx,
                    "reason": "no features"} for q in queries if q.clip_uid in gone]
        queries = [q for q in queries if q.clip_uid not in gone]
        if not queries:
            raise HeadDataError(f"no query of {what} has features in {features.root}")
    video, grid = {}, {}
    spans = np.zeros((len(queries), 2), dtype=np.int64)
    for i, q in enumerate(queries):
        if q.clip_uid not in video:
            raw = features[q.clip_uid]
            n_expected, grid_duration = clip_units(q.clip_duration, features_per_second)
            if raw.shape[0] > n_expected + 2:
                raise HeadDataError(
                    f"clip {q.clip_uid}: {raw.shape[0]} features for a {q.clip_duration:.2f} s clip (expected about "
                    f"{n_expected} at {features_per_second:.4f}/s): the features are at another rate or of another "
                    "clip; set features_per_second or re-extract")
            video[q.clip_uid], grid[q.clip_uid] = pool_features(raw, max_pos_len), grid_duration
        raw_len = features[q.clip_uid].shape[0]
        covered = raw_len / features_per_second
        if q.end > covered + 1.0 / features_per_second:
            raise HeadDataError(
                f"clip {q.clip_uid}: its {raw_len} features cover {covered:.2f} s but query {q.query_idx} of "
                f"annotation {q.annotation_uid} ends at {q.end:.2f} s: the features are shorter than the annotated "
                "window (cut short, or extracted at another features_per_second)")
        n = video[q.clip_uid].shape[0]
        spans[i] = window_to_span(q.start, q.end, n, grid[q.clip_uid], features_per_second)
    return NlqSamples(queries, video, grid, [], spans, skipped)


def collate(samples: NlqSamples, idx: np.ndarray, extend: float) -> dict:
    """Padded tensors of the samples ``idx``: video ``[B, T, D]``, its mask, query ``[B, L, W]``,
    its mask, start / end targets and highlight targets."""
    import torch

    qs = [samples.queries[i] for i in idx]
    vids = [samples.video[q.clip_uid] for q in qs]
    txts = [samples.text[i] for i in idx]
    lens = np.array([len(v) for v in vids])
    tlens = np.array([len(t) for t in txts])
    b, t, lq = len(idx), int(lens.max()), int(tlens.max())
    video = np.zeros((b, t, vids[0].shape[1]), dtype=np.float32)
    query = np.zeros((b, lq, txts[0].shape[1]), dtype=np.float32)
    for j, (v, tx) in enumerate(zip(vids, txts)):
        video[j, :len(v)], query[j, :len(tx)] = v, tx
    spans = samples.spans[idx]
    return {"video": torch.from_numpy(video), "video_mask": torch.from_numpy(np.arange(t)[None] < lens[:, None]),
            "query": torch.from_numpy(query), "query_mask": torch.from_numpy(np.arange(lq)[None] < tlens[:, None]),
            "start": torch.from_numpy(spans[:, 0]), "end": torch.from_numpy(spans[:, 1]),
            "highlight": torch.from_numpy(highlight_labels(spans[:, 0], spans[:, 1], lens, t, extend)),
            "lengths": lens}


# ----------------------------------------------------------------------------- training

def _optimizer(model, cfg: NlqConfig, total_steps: int):
    """AdamW (no decay on biases and norms) with a linear warm-up / linear decay to 0."""
    import torch

    norms = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if "bias" in name.rsplit(".", 1)[-1] or id(p) in norms else decay).append(p)  # LSTM bias_ih too
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    warm = int(cfg.warmup_proportion * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return step / max(1, warm)
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_step(model, batch: dict, optimizer, scheduler, cfg: NlqConfig, device) -> float:
    """One update: span cross-entropy + highlight_lambda x highlight loss, gradients clipped."""
    import torch

    highlight, start, end = model(batch["video"].to(device), batch["video_mask"].to(device),
                                  batch["query"].to(device), batch["query_mask"].to(device))
    loss = span_loss(start, end, batch["start"].to(device), batch["end"].to(device)) + cfg.highlight_lambda * \
        highlight_loss(highlight, batch["highlight"].to(device), batch["video_mask"].to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of an epoch: a function of (seed, epoch), so a resumed run
    sees the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def predict(model, samples: NlqSamples, cfg: NlqConfig, device) -> list[dict]:
    """Challenge-format entries: the ``topk`` best windows (seconds) of every query."""
    import torch

    model.eval()
    results = []
    with torch.no_grad():
        for i in range(0, len(samples), cfg.batch):
            idx = np.arange(i, min(i + cfg.batch, len(samples)))
            b = collate(samples, idx, cfg.extend)
            _, start, end = model(b["video"].to(device), b["video_mask"].to(device), b["query"].to(device),
                                  b["query_mask"].to(device))
            starts, ends = (x.cpu().numpy() for x in top_spans(start, end, cfg.topk))
            for j, k in enumerate(idx):
                q, n = samples.queries[k], int(b["lengths"][j])
                windows = [span_to_window(int(s), int(e), n, samples.grid[q.clip_uid])
                           for s, e in zip(starts[j], ends[j]) if e < n]
                results.append({"clip_uid": q.clip_uid, "annotation_uid": q.annotation_uid,
                                "query_idx": q.query_idx, "predicted_times": [[float(a), float(z)] for a, z in windows]})
    return results


def _validate(cfg: NlqConfig) -> None:
    if cfg.missing_features not in ("error", "skip"):
        raise HeadConfigError(f"missing_features must be 'error' or 'skip', got {cfg.missing_features!r}")
    for key in ("batch", "topk", "text_batch"):
        if getattr(cfg, key) < 1:
            raise HeadConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.epochs < 0 or cfg.lr <= 0 or cfg.features_per_second <= 0:
        raise HeadConfigError("epochs must be >= 0; lr and features_per_second must be positive")


def run_nlq(cfg: NlqConfig) -> dict:
    """Train VSLNet on the train queries, predict and score the validation queries; returns the
    results record (also written to ``<out>/nlq.json`` / ``nlq.md``)."""
    from tqdm import tqdm

    from ...device import resolve_device
    from ..scorers import nlq_scores_from_json

    _validate(cfg)
    options = head_options(str(cfg.head.get("name")), cfg.head, task="nlq")
    data = Path(cfg.data)
    train_q = read_nlq_queries(data / cfg.train_file)
    val_q = read_nlq_queries(data / cfg.val_file)
    rate = check_feature_rate(cfg.features, cfg.features_per_second)
    device = resolve_device(cfg.device)
    provenance = features_provenance(cfg.features)
    t0 = time.time()
    config = dataclasses.asdict(cfg)
    with HeadRun(cfg.out, config, what="egohod head nlq", transport=transport_fields(NlqConfig), overwrite=cfg.overwrite) as run:
        seed_everything(cfg.seed)
        feats = ClipFeatures(cfg.features, trust_pickle=cfg.trust_pickle)
        common = dict(max_pos_len=options.max_pos_len, features_per_second=cfg.features_per_second,
                      missing=cfg.missing_features)
        train = build_samples(train_q, feats, what=cfg.train_file, **common)
        val = build_samples(val_q, feats, what=cfg.val_file, **common)
        texts = sorted({canonical_query(q.query) for q in train.queries + val.queries})
        encoded, text_weights = encode_queries(texts, cfg.text_encoder, cfg.text_checkpoint, device, seed=cfg.seed,
                                               batch=cfg.text_batch, trust_pickle=cfg.trust_pickle,
                                               progress=cfg.progress)
        text_of = dict(zip(texts, encoded))
        train.attach_text(text_of)
        val.attach_text(text_of)

        seed_everything(cfg.seed)
        model = VSLNet(feats.dim, encoded[0].shape[1], options).to(device)
        steps_per_epoch = math.ceil(len(train) / cfg.batch)
        optimizer, scheduler = _optimizer(model, cfg, max(1, steps_per_epoch * cfg.epochs))
        first_epoch, losses, _ = run.resume_training(model, optimizer, scheduler)
        for epoch in range(first_epoch, cfg.epochs):
            model.train()
            order = _epoch_order(len(train), cfg.seed, epoch)
            batches = [order[i:i + cfg.batch] for i in range(0, len(order), cfg.batch)]
            total = 0.0
            for idx in tqdm(batches, desc=f"nlq epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                            disable=not cfg.progress, leave=False):
                total += train_step(model, collate(train, idx, cfg.extend), optimizer, scheduler, cfg, device)
            losses.append(total / len(batches))
            run.save_training(model, optimizer, scheduler, epoch + 1, losses, head="vslnet", video_dim=feats.dim,
                              query_dim=int(encoded[0].shape[1]))

        results = predict(model, val, cfg, device)
        pred_path = run.path("predictions.json")
        from ...fileio import atomic_write_json

        atomic_write_json(pred_path, {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": results})
        gt = json.loads((data / cfg.val_file).read_text(encoding="utf-8"))
        metrics = nlq_scores_from_json(json.loads(pred_path.read_text(encoding="utf-8")), gt)
        text_random = text_weights.startswith("random")
        record = {
            "benchmark": "ego4d-nlq", "head": "vslnet", "metrics": metrics,
            "encoder": provenance["encoder"], "weights": provenance["weights"],
            "features_random_weights": provenance["random_weights"], "text_encoder": cfg.text_encoder,
            "text_weights": text_weights, "text_random_weights": text_random,
            "random_weights": provenance["random_weights"] or text_random,
            "features_per_second": rate or cfg.features_per_second, "epochs_trained": len(losses),
            "train_losses": losses, "train_queries": len(train), "val_queries": len(val),
            "skipped": train.skipped + val.skipped, "predictions": str(pred_path),
            "elapsed_s": round(time.time() - t0, 3), "config": config}
        label = "vslnet" + (" (RANDOM WEIGHTS)" if record["random_weights"] else "")
        row = {"benchmark": "ego4d-nlq", "head": label, "features": provenance["encoder"],
               **{k: metrics[k] for k in ("r1_iou0.3", "r5_iou0.3", "r1_iou0.5", "r5_iou0.5", "miou")}}
        js, md = run.write_results("nlq", {**record, "table_row": row}, [row])
        record.update(table_row=row, files={"results": str(js), "table": str(md)})
    return record
