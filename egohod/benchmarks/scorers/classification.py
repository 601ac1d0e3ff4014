"""Classification-style scorers: top-k accuracy, mean class accuracy, EgoMCQ, EK-100 action.

Zero-shot classification (EK-100 CLS, EGTEA), as LaViLa / EgoHOD score it:

* **top-k**: a sample is correct when its label is among the ``k`` highest-scoring classes.
  Tied scores are ordered by class index (lower first), the order ``np.argmax`` /
  ``torch.argmax`` use for top-1. (``torch.topk`` leaves the order of exact ties unspecified;
  exact float ties between class scores are the only inputs where a run of the upstream
  scripts can differ from this definition.)
* **mean class accuracy**: from the confusion matrix of top-1 predictions, the mean over
  classes of ``cm[c, c] / cm[c, :].sum()``. ``over="labels"`` (default) averages over the
  classes present in the labels (EgoHOD's EGTEA script: all 106 classes of ``test_split1``);
  ``over="labels_and_predictions"`` reproduces LaViLa's ``sklearn.confusion_matrix`` call,
  whose rows also include classes only ever predicted (they count as accuracy 0). The two agree
  whenever every predicted class also occurs in the labels, as on EGTEA ``test_split1``.

EgoMCQ: the answer is the argmax over the choices (first maximum on ties); accuracy is
reported separately for ``type == 1`` (**inter**-video: the 5 choices come from different
videos) and ``type == 2`` (**intra**-video: 5 clips of the same video). Some public code prints
these two labels swapped (LaViLa's/EgoVLP's ``["Intra-video", "Inter-video"]`` zipped with the
sorted types); EgoHOD's script and the EgoVLP paper use type 1 = inter.

EK-100 action recognition (the official EPIC-KITCHENS C1 ``evaluate.py``): verb and noun
scores are each cut to their top 100 classes, turned into probabilities with one softmax over
the whole ``[N, 100]`` array (``scipy.special.softmax`` without an axis), multiplied into a
100 x 100 action score per sample, and the 100 best actions form the action ranking
(action id = ``verb * 1000 + noun``). Verb / noun / action top-1 and top-5 are then read off
those rankings. Ties follow numpy's default ``argsort`` reversed, as the official code does.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import require_finite

__all__ = [
    "topk_accuracy",
    "mean_class_accuracy",
    "classification_scores",
    "egomcq_scores",
    "ek100_action_rankings",
    "ek100_action_scores",
    "ACTION_VERB_MULTIPLIER",
]

ACTION_VERB_MULTIPLIER = 1000


def _check_scores_labels(scores: np.ndarray, labels: np.ndarray, what: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"{what} must be 2-D [n_samples, n_classes], got shape {scores.shape}")
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(f"labels must be 1-D with one entry per row of {what} ({scores.shape[0]}), "
                         f"got shape {labels.shape}")
    if scores.shape[0] == 0:
        raise ValueError(f"{what} has no rows; need at least one sample")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1] - 1}] (the columns of {what}), "
                         f"got range [{labels.min()}, {labels.max()}]")
    require_finite(scores, what)
    return scores, labels


def _label_rank(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each sample's label when classes are sorted by descending score,
    ties broken by lower class index first."""
    target = np.take_along_axis(scores, labels[:, None], axis=1)
    cols = np.arange(scores.shape[1])[None, :]
    better = (scores > target) | ((scores == target) & (cols < labels[:, None]))
    return better.sum(axis=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent for each ``k`` (``k`` larger than the class count counts all)."""
    scores, labels = _check_scores_labels(scores, labels)
    rank = _label_rank(scores, labels)
    return {int(k): 100.0 * float(np.mean(rank < k)) for k in ks}


def mean_class_accuracy(predictions: np.ndarray, labels: np.ndarray, over: str = "labels") -> float:
    """Mean per-class accuracy (percent) from the confusion matrix of top-1 ``predictions``."""
    predictions = np.asarray(predictions).astype(np.int64)
    labels = np.asarray(labels).astype(np.int64)
    if predictions.shape != labels.shape or labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must be equal-length 1-D")
    if over == "labels":
        classes = np.unique(labels)
    elif over == "labels_and_predictions":
        classes = np.union1d(labels, predictions)
    else:
        raise ValueError(f"over must be 'labels' or 'labels_and_predictions', got {over!r}")
    index = np.searchsorted(classes, labels)
    support = np.bincount(index, minlength=len(classes))
    correct = np.bincount(index, weights=(predictions == labels), minlength=len(classes))
    per_class = np.divide(correct, support, out=np.zeros(len(classes)), where=support > 0)
    return 100.0 * float(np.mean(per_class))


def classification_scores(scores: np.ndarray, labels: np.ndarray, over: str = "labels") -> dict[str, float]:
    """``top1``, ``top5`` and ``mean_class_acc`` in percent for ``[N, C]`` scores and ``[N]`` labels."""
    scores, labels = _check_scores_labels(scores, labels)
    acc = topk_accuracy(scores, labels, ks=(1, 5))
    top1_pred = np.argmax(scores, axis=1)  # first maximum on ties
    return {
        "top1": acc[1],
        "top5": acc[5],
        "mean_class_acc": mean_class_accuracy(top1_pred, labels, over=over),
    }


def egomcq_scores(scores: np.ndarray, answers: np.ndarray, types: np.ndarray) -> dict[str, float]:
    """EgoMCQ accuracy (percent): ``inter`` over ``types == 1``, ``intra`` over ``types == 2``.

    A group with no questions is reported as NaN. Types other than 1 and 2 are an error.
    """
    scores, answers = _check_scores_labels(scores, answers, what="EgoMCQ scores")
    types = np.asarray(types)
    if types.shape != answers.shape:
        raise ValueError(f"types must have one entry per question ({answers.shape[0]}), got shape {types.shape}")
    unknown = sorted(set(np.unique(types).tolist()) - {1, 2})
    if unknown:
        raise ValueError(f"EgoMCQ types must be 1 (inter-video) or 2 (intra-video), found {unknown}")
    correct = np.argmax(scores, axis=1) == answers
    out = {}
    for name, t in (("inter", 1), ("intra", 2)):
        sel = types == t
        out[name] = 100.0 * float(correct[sel].mean()) if sel.any() else math.nan
    return out


# ---- EK-100 action recognition (official C1 evaluate.py definitions) -------------------------

def _top_scores(scores: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argsort(scores)[:, ::-1][:, :top_n]
    return idx, np.take_along_axis(scores, idx, axis=1)


def _softmax_all(x: np.ndarray) -> np.ndarray:
    # one softmax over every entry of the array (scipy.special.softmax with axis=None)
    e = np.exp(x - np.amax(x, axis=None, keepdims=True))
    return e / np.sum(e, axis=None, keepdims=True)


def ek100_action_rankings(verb_scores: np.ndarray, noun_scores: np.ndarray, top_n: int = 100) -> np.ndarray:
    """``[N, min(top_n, ...)]`` action ids (``verb * 1000 + noun``), best first."""
    verb_scores = np.asarray(verb_scores)  # dtype kept: ties and rounding follow the input's
    noun_scores = np.asarray(noun_scores)
    if verb_scores.ndim != 2 or noun_scores.ndim != 2 or len(verb_scores) != len(noun_scores):
        raise ValueError(f"verb scores {verb_scores.shape} and noun scores {noun_scores.shape} must be "
                         "[N, n_verbs] and [N, n_nouns] with the same N")
    top_verbs, top_verb_scores = _top_scores(verb_scores, top_n)
    top_nouns, top_noun_scores = _top_scores(noun_scores, top_n)
    action = _softmax_all(top_verb_scores)[:, :, None] * _softmax_all(top_noun_scores)[:, None, :]
    n = action.shape[0]
    order = action.reshape(n, -1).argsort(axis=-1)[:, ::-1][:, :top_n]
    vi, ni = np.unravel_index(order, action.shape[1:])
    rows = np.arange(n)[:, None]
    ids = top_verbs[rows, vi] * ACTION_VERB_MULTIPLIER + top_nouns[rows, ni]
    # the official scorer stores {action: score} and ranks those entries again by score
    kept = np.take_along_axis(action.reshape(n, -1), order, axis=1)
    return np.take_along_axis(ids, np.argsort(kept)[:, ::-1], axis=1)


def _ranking_topk(ranking: np.ndarray, labels: np.ndarray, ks) -> dict[int, float]:
    hit = ranking[:, :max(ks)] == labels[:, None]
    return {int(k): 100.0 * float(hit[:, :k].max(1).mean()) for k in ks}


def ek100_action_scores(verb_scores: np.ndarray, noun_scores: np.ndarray, verb_labels: np.ndarray,
                        noun_labels: np.ndarray, top_n: int = 100) -> dict[str, float]:
    """Verb / noun / action top-1 and top-5 accuracy (percent) as the official EK-100 scorer."""
    verb_scores, verb_labels = _check_scores_labels(verb_scores, verb_labels, what="verb scores")
    noun_scores, noun_labels = _check_scores_labels(noun_scores, noun_labels, what="noun scores")
    if len(verb_scores) != len(noun_scores):
        raise ValueError(f"verb scores have {len(verb_scores)} rows but noun scores {len(noun_scores)}")
    actions = ek100_action_rankings(verb_scores, noun_scores, top_n=top_n)
    action_labels = verb_labels * ACTION_VERB_MULTIPLIER + noun_labels
    out = {}
    for task, ranking, labels in (
        ("verb", verb_scores.argsort(axis=-1)[:, ::-1], verb_labels),
        ("noun", noun_scores.argsort(axis=-1)[:, ::-1], noun_labels),
        ("action", actions, action_labels),
    ):
        acc = _ranking_topk(ranking, labels, (1, 5))
        out[f"{task}_top1"], out[f"{task}_top5"] = acc[1], acc[5]
    return out
