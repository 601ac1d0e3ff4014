"""Temporal action segmentation scorers (GTEA, HOI4D), as MS-TCN's ``eval.py`` defines them.

* **Acc**: frame accuracy over every frame of every video (background frames included).
* **Edit**: per video, the label sequences of the predicted and ground-truth *segments* (runs
  of equal frame labels, background runs left out) are compared with the Levenshtein distance
  ``D``; the score is ``(1 - D / max(len_pred, len_gt)) * 100``, averaged over videos. A video
  with no foreground segment on either side gives 0/0 = NaN, as in the reference.
* **F1@{10,25,50}**: each predicted foreground segment, in temporal order, is compared with
  the ground-truth segments by ``IoU = (min(ends) - max(starts)) / (max(ends) - min(starts))``
  (zero for other labels; non-overlapping segments give negative values). The best-scoring
  ground-truth segment (first on ties) makes a true positive when its IoU is ``>= tau`` and it
  is not already matched, otherwise the prediction is a false positive; unmatched ground-truth
  segments are false negatives. TP/FP/FN are summed over all videos and F1 is computed once
  (NaN -> 0), in percent. Where the reference raises (predicted segments in a video with no
  ground-truth segment) every predicted segment here counts as a false positive.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["segments", "edit_score", "f1_counts", "segmentation_scores", "F1_OVERLAPS"]

F1_OVERLAPS = (0.10, 0.25, 0.50)


def segments(labels: Sequence, background: Sequence = ("background",)):
    """Runs of equal labels, background runs removed: ``(labels, starts, ends)`` (end exclusive)."""
    labels = list(labels)
    if not labels:
        raise ValueError("empty frame-label sequence")
    arr = np.asarray(labels, dtype=object)
    change = np.nonzero(arr[1:] != arr[:-1])[0] + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(arr)]])
    bg = set(background)
    keep = [i for i, s in enumerate(starts) if labels[s] not in bg]
    return [labels[starts[i]] for i in keep], starts[keep], ends[keep]


def _levenshtein(a: Sequence, b: Sequence) -> float:
    prev = np.arange(len(b) + 1, dtype=np.float64)
    for i in range(1, len(a) + 1):
        cur = np.empty_like(prev)
        cur[0] = i
        for j in range(1, len(b) + 1):
            cur[j] = prev[j - 1] if a[i - 1] == b[j - 1] else min(prev[j], cur[j - 1], prev[j - 1]) + 1
        prev = cur
    return float(prev[-1])


def edit_score(pred: Sequence, gt: Sequence, background: Sequence = ("background",)) -> float:
    """Normalised segmental edit score (percent) of one video."""
    p, _, _ = segments(pred, background)
    y, _, _ = segments(gt, background)
    denom = max(len(p), len(y))
    if denom == 0:
        return float("nan")
    return (1 - _levenshtein(p, y) / denom) * 100


def f1_counts(pred: Sequence, gt: Sequence, overlap: float, background: Sequence = ("background",)):
    """``(tp, fp, fn)`` of one video at IoU threshold ``overlap``."""
    p_lab, p_s, p_e = segments(pred, background)
    y_lab, y_s, y_e = segments(gt, background)
    if not y_lab:
        return 0.0, float(len(p_lab)), 0.0
    y_lab_arr = np.asarray(y_lab, dtype=object)
    hits = np.zeros(len(y_lab), dtype=bool)
    tp = fp = 0
    for lab, s, e in zip(p_lab, p_s, p_e):
        inter = np.minimum(e, y_e) - np.maximum(s, y_s)
        union = np.maximum(e, y_e) - np.minimum(s, y_s)
        iou = (1.0 * inter / union) * (y_lab_arr == lab)
        j = int(np.argmax(iou))
        if iou[j] >= overlap and not hits[j]:
            tp += 1
            hits[j] = True
        else:
            fp += 1
    return float(tp), float(fp), float(len(y_lab) - hits.sum())


def segmentation_scores(preds: Sequence[Sequence], gts: Sequence[Sequence], background: Sequence = ("background",),
                        overlaps: Sequence[float] = F1_OVERLAPS) -> dict[str, float]:
    """``acc``, ``edit`` and ``f1@10/25/50`` (percent) over a list of videos' frame labels."""
    if len(preds) != len(gts) or len(gts) == 0:
        raise ValueError(f"need one prediction per video and at least one video: {len(preds)} vs {len(gts)}")
    correct = total = 0
    edits = []
    counts = np.zeros((len(overlaps), 3))
    for v, (p, y) in enumerate(zip(preds, gts)):
        p, y = list(p), list(y)
        if len(p) < len(y):
            raise ValueError(f"video {v}: {len(p)} predicted frame labels for {len(y)} ground-truth frames")
        # accuracy over the ground-truth frames; edit and F1 over the whole prediction, as MS-TCN
        correct += sum(a == b for a, b in zip(p[:len(y)], y))
        total += len(y)
        edits.append(edit_score(p, y, background))
        for k, tau in enumerate(overlaps):
            counts[k] += f1_counts(p, y, tau, background)
    out = {"acc": 100.0 * correct / total, "edit": float(np.mean(edits))}
    for k, tau in enumerate(overlaps):
        tp, fp, fn = counts[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.float64(tp) / (tp + fp)
            recall = np.float64(tp) / (tp + fn)
            f1 = 2.0 * (precision * recall) / (precision + recall)
        out[f"f1@{int(round(tau * 100))}"] = float(np.nan_to_num(f1) * 100)
    return out
