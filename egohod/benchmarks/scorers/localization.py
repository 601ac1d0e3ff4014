"""Temporal localisation scorers: Ego4D NLQ and Ego4D MQ.

**NLQ** (the official ``evaluate_ego4d_nlq.py``): for each query, the IoU of every predicted
window ``[s, e]`` with the single ground-truth window is ``max(0, min(e) - max(s)) /
max(0, max(e) - min(s))``. Recall@K at threshold ``t`` counts a query as found when any of its
first ``K`` predictions has IoU **strictly greater** than ``t``; ``mIoU`` is the mean IoU of the
first (top-1) prediction. Both are averaged over the evaluated queries, in percent.

**MQ** (the official ``MQ/Evaluation/ego4d``):

* ``mAP``: ActivityNet detection AP per class and per tIoU threshold (default
  ``0.1, 0.2, 0.3, 0.4, 0.5``, the exact floats of the official ``--tIoU_thr`` default; note that
  ``np.linspace(0.1, 0.5, 5)`` gives ``0.30000000000000004``, which changes the result when a
  tIoU is exactly 0.3), averaged over the classes present in the ground truth and then
  over thresholds. Predictions of a class are taken by descending score
  (``argsort()[::-1]``); each is matched to the ground-truth segment of its video with the
  highest tIoU (``>=`` threshold) not yet matched; AP is the VOC-2011 interpolated area under
  the precision/recall curve. tIoU here is intersection over the true union. Predictions whose
  label does not occur in the ground truth are dropped, as in the official code.
* ``recall@1x_tiou0.5``: for every (video, label) with ``n`` ground-truth segments, the first
  ``n`` predictions of that label *in the given order* (the official code reads them in file
  order, which its inference script writes sorted by score) retrieve a ground-truth segment
  when one of them overlaps it with IoU strictly above 0.5; averaged over all ground-truth
  segments. A video with no predictions at all counts as all missed (the official script
  raises ``KeyError`` there).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "window_iou",
    "nlq_scores",
    "nlq_scores_from_json",
    "segment_tiou",
    "interpolated_ap",
    "detection_ap",
    "mq_scores",
    "MQ_TIOU_THRESHOLDS",
]

MQ_TIOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


# ---- NLQ -------------------------------------------------------------------------------------

def window_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of windows ``pred [..., 2]`` with windows ``gt [..., 2]`` (broadcast), NLQ definition."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    inter = np.maximum(0.0, np.minimum(pred[..., 1], gt[..., 1]) - np.maximum(pred[..., 0], gt[..., 0]))
    union = np.maximum(0.0, np.maximum(pred[..., 1], gt[..., 1]) - np.minimum(pred[..., 0], gt[..., 0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 * inter / union


def nlq_scores(predictions: Sequence[np.ndarray], ground_truth: np.ndarray,
               thresholds: Sequence[float] = (0.3, 0.5), topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """NLQ Recall@K at IoU thresholds and mIoU, in percent.

    Args:
        predictions: per query, ``[K_i, 2]`` predicted windows (seconds), best first.
        ground_truth: ``[N, 2]`` ground-truth window per query.

    Returns:
        ``r{K}_iou{t}`` for each K and t (e.g. ``r1_iou0.3``), and ``miou``.
    """
    gt = np.asarray(ground_truth, dtype=np.float64)
    if gt.ndim != 2 or gt.shape[1] != 2:
        raise ValueError(f"ground_truth must be [N, 2] windows, got shape {gt.shape}")
    if len(predictions) != len(gt):
        raise ValueError(f"{len(predictions)} prediction lists for {len(gt)} ground-truth windows")
    if len(gt) == 0:
        raise ValueError("no queries to evaluate")
    width = max(max(len(np.asarray(p).reshape(-1, 2)) for p in predictions), max(topk), 1)
    padded = np.full((len(gt), width, 2), np.nan)
    for i, p in enumerate(predictions):
        p = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        if len(p) == 0:
            raise ValueError(f"query {i} has no predicted window")
        padded[i, :len(p)] = p
    iou = window_iou(padded, gt[:, None, :])  # [N, width], NaN past each query's predictions
    out = {}
    for k in topk:
        for t in thresholds:
            hit = (np.nan_to_num(iou[:, :k], nan=-np.inf) > t).any(axis=1)
            out[f"r{k}_iou{t:g}"] = 100.0 * float(hit.mean())
    out["miou"] = 100.0 * float(np.mean(iou[:, 0]))
    return out


def nlq_scores_from_json(predictions: Mapping, ground_truth: Mapping, thresholds=(0.3, 0.5),
                         topk=(1, 5)) -> dict[str, float]:
    """NLQ scores from the official JSON structures (``results`` list / ``videos`` tree)."""
    if "results" not in predictions:
        raise KeyError("NLQ predictions JSON needs a 'results' list of "
                       "{clip_uid, annotation_uid, query_idx, predicted_times}")
    if "videos" not in ground_truth:
        raise KeyError("NLQ ground-truth JSON needs a 'videos' list (official nlq_val.json layout)")
    windows = {}
    for video in ground_truth["videos"]:
        for clip in video["clips"]:
            for ann in clip["annotations"]:
                for q, query in enumerate(ann["language_queries"]):
                    windows[(clip["clip_uid"], ann["annotation_uid"], q)] = (
                        query["clip_start_sec"], query["clip_end_sec"])
    preds, gts = [], []
    for r in predictions["results"]:
        key = (r["clip_uid"], r["annotation_uid"], int(r["query_idx"]))
        if key not in windows:
            raise KeyError(f"prediction for clip {key[0]!r}, annotation {key[1]!r}, query {key[2]} "
                           "has no ground truth")
        preds.append(np.asarray(r["predicted_times"], dtype=np.float64).reshape(-1, 2))
        gts.append(windows[key])
    return nlq_scores(preds, np.asarray(gts, dtype=np.float64), thresholds, topk)


# ---- MQ --------------------------------------------------------------------------------------

def segment_tiou(target: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """tIoU of one ``[start, end]`` segment with ``[M, 2]`` candidates (true union)."""
    inter = (np.minimum(target[1], candidates[:, 1]) - np.maximum(target[0], candidates[:, 0])).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    return inter.astype(float) / union


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 interpolated average precision."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def detection_ap(gt_videos: Sequence, gt_segments: np.ndarray, pred_videos: Sequence,
                 pred_segments: np.ndarray, pred_scores: np.ndarray, tious: Sequence[float]) -> np.ndarray:
    """ActivityNet AP of one class at each tIoU threshold."""
    tious = np.asarray(tious, dtype=np.float64)
    ap = np.zeros(len(tious))
    if len(pred_scores) == 0:
        return ap
    npos = float(len(gt_segments))
    by_video: dict = defaultdict(list)
    for j, v in enumerate(gt_videos):
        by_video[v].append(j)
    locked = np.full((len(tious), len(gt_segments)), -1)
    order = np.asarray(pred_scores, dtype=np.float64).argsort()[::-1]
    tp = np.zeros((len(tious), len(order)))
    fp = np.zeros((len(tious), len(order)))
    for i, p in enumerate(order):
        gt_idx = by_video.get(pred_videos[p])
        if not gt_idx:
            fp[:, i] = 1
            continue
        gt_idx = np.asarray(gt_idx)
        tiou = segment_tiou(pred_segments[p], gt_segments[gt_idx])
        best_first = tiou.argsort()[::-1]
        for t, thr in enumerate(tious):
            for j in best_first:
                if tiou[j] < thr:
                    break
                if locked[t, gt_idx[j]] >= 0:
                    continue
                tp[t, i] = 1
                locked[t, gt_idx[j]] = i
                break
            if tp[t, i] == 0:
                fp[t, i] = 1
    tp_c, fp_c = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    recall = tp_c / npos
    precision = tp_c / (tp_c + fp_c)
    return np.array([interpolated_ap(precision[t], recall[t]) for t in range(len(tious))])


def _check_rows(rows, n: int, what: str):
    for r in rows:
        if len(r) != n:
            raise ValueError(f"each {what} entry must have {n} fields, got {r!r}")


def mq_scores(ground_truth: Mapping[str, Sequence], predictions: Mapping[str, Sequence],
              tious: Sequence[float] = MQ_TIOU_THRESHOLDS, recall_tiou: float = 0.5) -> dict[str, float]:
    """Ego4D MQ: mAP per tIoU, their mean, and Recall@1x at ``recall_tiou`` (percent).

    Args:
        ground_truth: ``{video: [(label, start, end), ...]}``.
        predictions: ``{video: [(label, start, end, score), ...]}`` (for the recall, the order
            within a video is the ranking, as in the official files).

    Returns:
        ``map_tiou{t}`` per threshold, ``map_avg`` and ``recall1x_tiou{recall_tiou}``.
    """
    gt_rows = [(v, *r) for v, rows in ground_truth.items() for r in rows]
    _check_rows([r[1:] for r in gt_rows], 3, "ground-truth (label, start, end)")
    pred_rows = [(v, *r) for v, rows in predictions.items() for r in rows]
    _check_rows([r[1:] for r in pred_rows], 4, "prediction (label, start, end, score)")
    if not gt_rows:
        raise ValueError("MQ ground truth has no segments")
    labels = list(dict.fromkeys(r[1] for r in gt_rows))  # first-seen order, as the official index
    ap = np.zeros((len(tious), len(labels)))
    for c, label in enumerate(labels):
        g = [r for r in gt_rows if r[1] == label]
        p = [r for r in pred_rows if r[1] == label]
        ap[:, c] = detection_ap(
            [r[0] for r in g], np.asarray([r[2:4] for r in g], dtype=np.float64).reshape(-1, 2),
            [r[0] for r in p], np.asarray([r[2:4] for r in p], dtype=np.float64).reshape(-1, 2),
            np.asarray([r[4] for r in p], dtype=np.float64), tious)
    per_tiou = ap.mean(axis=1)
    out = {f"map_tiou{t:g}": 100.0 * float(m) for t, m in zip(tious, per_tiou)}
    out["map_avg"] = 100.0 * float(per_tiou.mean())

    retrieved = []
    for video, rows in ground_truth.items():
        by_label: dict = defaultdict(list)
        for label, s, e in rows:
            by_label[label].append((s, e))
        preds_by_label: dict = defaultdict(list)
        for label, s, e, _score in predictions.get(video, ()):
            preds_by_label[label].append((s, e))
        for label, segs in by_label.items():
            segs = np.asarray(segs, dtype=np.float64)
            cand = np.asarray(preds_by_label.get(label, []), dtype=np.float64).reshape(-1, 2)[:len(segs)]
            if len(cand) == 0:
                retrieved.extend([False] * len(segs))
                continue
            iou = window_iou(cand[:, None, :], segs[None, :, :])
            retrieved.extend((iou > recall_tiou).any(axis=0).tolist())
    out[f"recall1x_tiou{recall_tiou:g}"] = 100.0 * float(np.mean(retrieved))
    return out
