"""EPIC-KITCHENS-100 multi-instance retrieval (MIR): mAP and nDCG.

Definitions (those of the JPoSE evaluation code by M. Wray that LaViLa and EgoHOD reuse):

* rows of ``sim`` are queries, columns are the items they rank; ``rel[i, j]`` is the graded
  (0..1) semantic relevancy of item ``j`` to query ``i``.
* **mAP** -- each row is ranked by *descending similarity* (``argsort(-sim)``). An item is
  *relevant* when ``rel == 1``. Precision at rank ``k`` sums the *graded* relevancy of the first
  ``k`` items and divides by ``k``; the AP of a row sums precision@k over the ranks holding a
  relevant item and divides by the number of relevant items in the row.
* **nDCG** -- each row is ranked by ``argsort(sim)`` reversed; ``k`` is the number of items with
  non-zero relevancy in that row; ``DCG = sum_{i<k} rel_(i) / log2(i + 2)`` over the first
  ``k`` ranked items; it is divided by the DCG of the ideal ranking (items by descending
  relevancy).
* video-to-text uses ``sim`` / ``rel`` (clips x captions); text-to-video their transposes;
  ``*_avg`` is the mean of the two. All values are reported in percent.

Ties in ``sim``: the official code orders tied items with numpy's default (unstable) argsort,
``argsort(-sim)`` for mAP and ``argsort(sim)[:, ::-1]`` for nDCG, and so does this module
(the same calls on the same rows), so the two agree exactly on tied inputs too.

Similarities and relevancies must be finite: NaN or inf in either is an error (a NaN relevancy
would otherwise turn every mean into NaN and read as "no relevant item").

Rows without a single ``rel == 1`` item (mAP) or without any non-zero relevancy (nDCG) give
0/0 = NaN in the official code, which then makes the mean NaN; here they are reported the same
way, with a warning naming how many rows are affected.

The work is done in blocks of rows so the full 9,668 x 3,842 test matrix scores in a few
seconds with bounded memory.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._checks import require_finite

__all__ = ["average_precision_rows", "ndcg_rows", "ek100_mir_scores", "check_mir_inputs"]

# Rows handled at once: 256 rows x 9,668 columns x 8 bytes ~ 20 MB per temporary (per thread).
_BLOCK_ROWS = 256


def check_mir_inputs(sim: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a similarity / relevancy pair and return them as numpy arrays (``rel`` as float64)."""
    sim = np.asarray(sim)
    rel = np.asarray(rel)
    if sim.ndim != 2:
        raise ValueError(f"similarity matrix must be 2-D (clips x captions), got shape {sim.shape}")
    if rel.shape != sim.shape:
        raise ValueError(
            f"relevancy matrix shape {rel.shape} does not match similarity matrix shape {sim.shape} "
            "(both must be clips x captions)"
        )
    if not np.issubdtype(sim.dtype, np.number) or np.issubdtype(sim.dtype, np.complexfloating):
        raise ValueError(f"similarity matrix must be real-valued, got dtype {sim.dtype}")
    require_finite(sim, "similarity matrix")
    if not np.issubdtype(rel.dtype, np.number) or np.issubdtype(rel.dtype, np.complexfloating):
        raise ValueError(f"relevancy matrix must be real-valued, got dtype {rel.dtype}")
    require_finite(rel, "relevancy matrix")
    return sim, rel.astype(np.float64, copy=False)


def _ap_from_order(order: np.ndarray, r: np.ndarray) -> np.ndarray:
    ranked = np.take_along_axis(r, order, axis=1)
    hits = ranked == 1
    # precision@k (graded) at the ranks holding a relevant item, zero elsewhere
    prec = np.cumsum(ranked, axis=1)
    prec[~hits] = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(prec / np.arange(1, r.shape[1] + 1), axis=1) / np.sum(hits, axis=1)


def _ap_block(s: np.ndarray, r: np.ndarray) -> np.ndarray:
    return _ap_from_order((-s).argsort(), r)


def _by_blocks(fn, sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """``fn`` over blocks of rows, in a thread pool (numpy's sorts release the GIL); every row is
    computed by the same operations whatever the block, so results do not depend on blocking."""
    starts = range(0, sim.shape[0], _BLOCK_ROWS)
    workers = min(len(starts), os.cpu_count() or 1, 8)
    if workers <= 1:
        parts = [fn(sim[lo:lo + _BLOCK_ROWS], rel[lo:lo + _BLOCK_ROWS]) for lo in starts]
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda lo: fn(sim[lo:lo + _BLOCK_ROWS], rel[lo:lo + _BLOCK_ROWS]), starts))
    return np.concatenate(parts)


def average_precision_rows(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-row average precision (fraction, not percent) of ranking each row of ``sim``.

    A row with no ``rel == 1`` item gets NaN (0/0), as in the official code.
    """
    sim, rel = check_mir_inputs(sim, rel)
    return _by_blocks(_ap_block, sim, rel)


def _log_discounts(m: int) -> np.ndarray:
    return np.log2(np.arange(m) + 2)


def _ndcg_from_order(order: np.ndarray, r: np.ndarray) -> np.ndarray:
    m = r.shape[1]
    discounts = _log_discounts(m)
    # only the first k ranks count, k = number of non-zero relevancies of the row
    in_top_k = (np.arange(m)[None, :] < np.count_nonzero(r > 0, axis=1)[:, None]).astype(int)
    dcg = np.sum(np.take_along_axis(r, order, axis=1) * in_top_k / discounts, axis=1)
    # the ideal ranking puts items in order of descending relevancy
    idcg = np.sum(np.sort(r)[:, ::-1] * in_top_k / discounts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return dcg / idcg


def _ndcg_block(s: np.ndarray, r: np.ndarray) -> np.ndarray:
    return _ndcg_from_order(np.argsort(s)[:, ::-1], r)


def _both_block(s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``[rows, 2]``: AP and nDCG with one sort for every row without tied similarities (where
    ``argsort(-s)`` and ``argsort(s)[::-1]`` are the same permutation) and the official second
    sort only for rows with ties."""
    s = np.ascontiguousarray(s)
    order = (-s).argsort()
    ranked = np.take_along_axis(s, order, axis=1)
    tied = (ranked[:, 1:] == ranked[:, :-1]).any(axis=1)
    ndcg_order = order
    if tied.any():
        ndcg_order = order.copy()
        ndcg_order[tied] = np.argsort(s[tied])[:, ::-1]
    return np.stack([_ap_from_order(order, r), _ndcg_from_order(ndcg_order, r)], axis=1)


def ndcg_rows(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-row nDCG (fraction) with ``k`` = number of non-zero relevancies of that row.

    A row whose relevancies are all zero gets NaN (0/0), as in the official code.
    """
    sim, rel = check_mir_inputs(sim, rel)
    return _by_blocks(_ndcg_block, sim, rel)


def _mean_with_warning(values: np.ndarray, what: str) -> float:
    bad = int(np.isnan(values).sum())
    if bad:
        warnings.warn(f"{what}: {bad} of {len(values)} queries have no relevant item; the mean is NaN "
                      "(as in the official evaluation)", RuntimeWarning, stacklevel=3)
    return float(np.mean(values))


def ek100_mir_scores(sim: np.ndarray, rel: np.ndarray) -> dict[str, float]:
    """EK-100 MIR metrics in percent.

    Args:
        sim: ``[n_clips, n_captions]`` similarity (any monotone transform of cosine similarity).
        rel: ``[n_clips, n_captions]`` graded relevancy, e.g. the official
            ``caption_relevancy_EPIC_100_retrieval_test.pkl``.

    Returns:
        ``map_v2t, map_t2v, map_avg, ndcg_v2t, ndcg_t2v, ndcg_avg``.
    """
    sim, rel = check_mir_inputs(sim, rel)
    v2t = _by_blocks(_both_block, sim, rel)
    t2v = _by_blocks(_both_block, sim.T, rel.T)
    map_v2t = _mean_with_warning(v2t[:, 0], "mAP video->text")
    map_t2v = _mean_with_warning(t2v[:, 0], "mAP text->video")
    ndcg_v2t = _mean_with_warning(v2t[:, 1], "nDCG video->text")
    ndcg_t2v = _mean_with_warning(t2v[:, 1], "nDCG text->video")
    out = {
        "map_v2t": map_v2t,
        "map_t2v": map_t2v,
        "map_avg": (map_v2t + map_t2v) / 2,
        "ndcg_v2t": ndcg_v2t,
        "ndcg_t2v": ndcg_t2v,
        "ndcg_avg": (ndcg_v2t + ndcg_t2v) / 2,
    }
    return {k: 100.0 * v for k, v in out.items()}
