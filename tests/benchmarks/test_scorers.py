"""Scorers against hand-computed cases and loop reimplementations of the official definitions."""
import math
import warnings

import numpy as np
import pytest

from egohod.benchmarks.scorers import (
    classification_scores,
    ek100_action_scores,
    ek100_mir_scores,
    egomcq_scores,
    mq_scores,
    nlq_scores,
    nlq_scores_from_json,
    segmentation_scores,
)
from egohod.benchmarks.scorers import retrieval as retrieval_mod

from . import reference_metrics as ref

TOL = 1e-6


def assert_close(got: dict, want: dict, tol=TOL):
    assert set(got) == set(want), (sorted(got), sorted(want))
    for k in want:
        if math.isnan(want[k]):
            assert math.isnan(got[k]), k
        else:
            assert abs(got[k] - want[k]) <= tol, (k, got[k], want[k])


# ---- EK-100 MIR ------------------------------------------------------------------------------

def test_mir_hand_computed():
    # clip 0 ranks captions [1, 0, 2]; clip 1 ranks [2, 1, 0]
    sim = np.array([[0.5, 0.9, 0.1], [0.1, 0.2, 0.3]])
    rel = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 1.0]])
    s = ek100_mir_scores(sim, rel)
    # v2t AP: clip0: rel==1 at rank 2, graded prec@2 = (0.5 + 1)/2 = 0.75 -> AP 0.75
    #         clip1: rel==1 at ranks 1, 2 -> (1/1 + 2/2)/2 = 1
    assert s["map_v2t"] == pytest.approx(100 * (0.75 + 1.0) / 2)
    # t2v: caption0 ranks clips [0, 1] (0.5 > 0.1), rel==1 at 1 -> AP 1
    #      caption1 ranks [0, 1] (0.9 > 0.2): rel [0.5, 1] -> rel==1 at rank 2, prec (0.5+1)/2 -> 0.75
    #      caption2 ranks [1, 0]: rel [1, 0] -> AP 1
    assert s["map_t2v"] == pytest.approx(100 * (1 + 0.75 + 1) / 3)
    # nDCG v2t clip0: k=2, ranked rel [0.5, 1] -> 0.5 + 1/log2(3); ideal 1 + 0.5/log2(3)
    d0 = (0.5 + 1 / math.log2(3)) / (1 + 0.5 / math.log2(3))
    assert s["ndcg_v2t"] == pytest.approx(100 * (d0 + 1.0) / 2)
    assert s["map_avg"] == pytest.approx((s["map_v2t"] + s["map_t2v"]) / 2)
    assert s["ndcg_avg"] == pytest.approx((s["ndcg_v2t"] + s["ndcg_t2v"]) / 2)


@pytest.mark.parametrize("seed", range(4))
def test_mir_matches_loop_reference_with_ties(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n, m = 37, 23
    sim = rng.integers(0, 5, size=(n, m)).astype(np.float32)  # many ties
    rel = rng.choice([0.0, 0.1, 0.3, 0.5, 1.0], size=(n, m), p=[0.5, 0.15, 0.1, 0.1, 0.15])
    rel[np.arange(n), np.arange(n) % m] = 1.0  # every row and column has a rel==1 item
    monkeypatch.setattr(retrieval_mod, "_BLOCK_ROWS", 8)  # exercise the row blocks
    assert_close(ek100_mir_scores(sim, rel), ref.mir_reference(sim, rel))


def test_mir_mixed_tied_and_untied_rows(monkeypatch):
    # rows without ties take the one-sort path, rows with ties the official second sort
    rng = np.random.default_rng(7)
    n, m = 30, 40
    sim = rng.random((n, m)).astype(np.float32)
    sim[::3] = np.round(sim[::3] * 4) / 4
    rel = rng.choice([0.0, 0.2, 0.6, 1.0], size=(n, m), p=[0.6, 0.15, 0.1, 0.15])
    rel[np.arange(n), np.arange(n)] = 1.0
    rel[np.arange(n, m) % n, np.arange(n, m)] = 1.0
    monkeypatch.setattr(retrieval_mod, "_BLOCK_ROWS", 7)
    assert_close(ek100_mir_scores(sim, rel), ref.mir_reference(sim, rel))


def test_mir_row_without_relevant_item_is_nan_with_warning():
    sim = np.array([[0.1, 0.2], [0.3, 0.4]])
    rel = np.array([[1.0, 0.0], [0.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="no relevant item"):
        s = ek100_mir_scores(sim, rel)
    assert math.isnan(s["map_v2t"]) and math.isnan(s["ndcg_v2t"])


def test_mir_shape_errors():
    with pytest.raises(ValueError, match="does not match"):
        ek100_mir_scores(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        ek100_mir_scores(np.zeros(3), np.zeros(3))


# ---- classification / EgoMCQ / EK-100 action ---------------------------------------------------

def test_classification_hand_computed():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
    labels = np.array([0, 0, 1, 2])
    s = classification_scores(scores, labels)
    # sample 2 ties classes 0 and 1: the lower index wins top-1, so it is wrong
    assert s["top1"] == pytest.approx(50.0)
    assert s["top5"] == pytest.approx(100.0)
    # class 0: 1/2, class 1: 0/1, class 2: 1/1 -> mean over the 3 label classes
    assert s["mean_class_acc"] == pytest.approx(100 * (0.5 + 0 + 1) / 3)


def test_mean_class_accuracy_over_labels_vs_union():
    scores = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 0])  # class 2 is only predicted
    assert classification_scores(scores, labels)["mean_class_acc"] == pytest.approx(50.0)
    # LaViLa's sklearn confusion matrix adds a row for class 2 with accuracy 0
    assert classification_scores(scores, labels, over="labels_and_predictions")["mean_class_acc"] == pytest.approx(25.0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("over", ["labels", "labels_and_predictions"])
def test_classification_matches_loop_reference(seed, over):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(60, 9)).astype(np.float32)
    labels = rng.integers(0, 7, size=60)
    assert_close(classification_scores(scores, labels, over=over), ref.classification_reference(scores, labels, over))


def test_classification_label_errors():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        classification_scores(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="one entry per row"):
        classification_scores(np.zeros((2, 3)), np.array([0]))


def test_egomcq_hand_computed_and_reference():
    scores = np.array([[0.1, 0.9, 0, 0, 0], [0.9, 0.1, 0, 0, 0], [0.3, 0.3, 0, 0, 0]])
    answers = np.array([1, 1, 0])
    types = np.array([1, 1, 2])
    s = egomcq_scores(scores, answers, types)
    assert s == {"inter": pytest.approx(50.0), "intra": pytest.approx(100.0)}  # tie -> first choice
    rng = np.random.default_rng(0)
    sc = rng.integers(0, 3, size=(50, 5)).astype(float)
    an, ty = rng.integers(0, 5, 50), rng.integers(1, 3, 50)
    assert_close(egomcq_scores(sc, an, ty), ref.egomcq_reference(sc, an, ty))
    with pytest.raises(ValueError, match="must be 1 .*inter-video.* or 2"):
        egomcq_scores(scores, answers, np.array([1, 0, 2]))


def test_egomcq_missing_group_is_nan():
    s = egomcq_scores(np.eye(5)[:2], np.array([0, 1]), np.array([1, 1]))
    assert s["inter"] == 100.0 and math.isnan(s["intra"])


@pytest.mark.parametrize("seed", range(2))
def test_ek100_action_matches_reference(seed):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(seed)
    n = 40
    verb = rng.normal(size=(n, 12)).astype(np.float32)
    noun = rng.normal(size=(n, 15)).astype(np.float32)
    verb[:, 3] = verb[:, 4]  # ties
    vl, nl = rng.integers(0, 12, n), rng.integers(0, 15, n)
    vl[:10] = verb[:10].argmax(1)
    nl[:10] = noun[:10].argmax(1)
    for top_n in (100, 8):
        got = ek100_action_scores(verb, noun, vl, nl, top_n=top_n)
        assert_close(got, ref.ek100_action_reference(verb, noun, vl, nl, top_n=top_n))
    assert got["action_top1"] >= 100 * 10 / n - 1e-9 or got["verb_top1"] > 0


# ---- NLQ / MQ ------------------------------------------------------------------------------

def test_nlq_hand_computed_strict_threshold():
    gt = np.array([[0.0, 10.0], [5.0, 6.0]])
    preds = [np.array([[0.0, 3.0], [0.0, 10.0]]),  # IoU 0.3 exactly (not counted), then 1.0
             np.array([[5.0, 7.0]])]                # IoU 0.5 exactly
    s = nlq_scores(preds, gt)
    assert s["r1_iou0.3"] == 50.0  # 0.3 is not > 0.3; query 1 has 0.5 > 0.3
    assert s["r5_iou0.3"] == 100.0
    assert s["r1_iou0.5"] == 0.0 and s["r5_iou0.5"] == 50.0
    assert s["miou"] == pytest.approx(100 * (0.3 + 0.5) / 2)


def test_nlq_matches_reference_and_json():
    rng = np.random.default_rng(1)
    gts = np.sort(rng.integers(0, 30, size=(25, 2)), axis=1).astype(float)
    gts[:, 1] += 1
    preds = []
    for _ in range(25):
        p = np.sort(rng.integers(0, 30, size=(rng.integers(1, 8), 2)), axis=1).astype(float)
        p[:, 1] += 1
        preds.append(p)
    want = ref.nlq_reference([p.tolist() for p in preds], gts.tolist())
    assert_close(nlq_scores(preds, gts), want)
    gt_json = {"videos": [{"clips": [{"clip_uid": "c", "annotations": [
        {"annotation_uid": "a", "language_queries": [
            {"clip_start_sec": g[0], "clip_end_sec": g[1]} for g in gts.tolist()]}]}]}]}
    pred_json = {"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": i,
                              "predicted_times": p.tolist()} for i, p in enumerate(preds)]}
    assert_close(nlq_scores_from_json(pred_json, gt_json), want)
    with pytest.raises(KeyError, match="no ground truth"):
        nlq_scores_from_json({"results": [{"clip_uid": "x", "annotation_uid": "a", "query_idx": 0,
                                           "predicted_times": [[0, 1]]}]}, gt_json)


def test_mq_hand_computed():
    gt = {"v": [("cut", 0.0, 10.0), ("cut", 20.0, 30.0)]}
    preds = {"v": [("cut", 0.0, 10.0, 0.9), ("cut", 40.0, 50.0, 0.8), ("cut", 21.0, 30.0, 0.7)]}
    s = mq_scores(gt, preds)
    # tp, fp, tp: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> interpolated AP = 0.5*1 + 0.5*2/3
    assert s["map_tiou0.5"] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))
    # the first 2 predictions retrieve only the first segment
    assert s["recall1x_tiou0.5"] == pytest.approx(50.0)


def test_mq_threshold_is_inclusive_at_exact_floats():
    # tIoU exactly 0.3 matches at threshold 0.3 (>=, the official list of floats) but not at 0.4
    s = mq_scores({"v": [("x", 0.0, 10.0)]}, {"v": [("x", 0.0, 3.0, 1.0)]})
    assert s["map_tiou0.3"] == 100.0 and s["map_tiou0.4"] == 0.0 and s["recall1x_tiou0.5"] == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_mq_matches_reference(seed):
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c"]
    gt, preds = {}, {}
    for v in range(4):
        gt[f"v{v}"] = []
        for _ in range(rng.integers(1, 5)):
            s = float(rng.integers(0, 40))
            gt[f"v{v}"].append((labels[rng.integers(0, 3)], s, s + float(rng.integers(1, 10))))
        preds[f"v{v}"] = []
        for _ in range(rng.integers(0, 9)):
            s = float(rng.integers(0, 40))
            preds[f"v{v}"].append((labels[rng.integers(0, 3)], s, s + float(rng.integers(1, 10)),
                                   float(rng.integers(0, 4))))  # tied scores
    assert_close(mq_scores(gt, preds), ref.mq_reference(gt, preds))


# ---- action segmentation ---------------------------------------------------------------------

def test_segmentation_hand_computed():
    gt = ["bg", "bg", "a", "a", "a", "a", "b", "b", "bg", "bg"]
    pr = ["bg", "a", "a", "a", "bg", "bg", "b", "b", "b", "bg"]
    s = segmentation_scores([pr], [gt], background=("bg",))
    assert s["acc"] == pytest.approx(60.0)
    assert s["edit"] == pytest.approx(100.0)  # segments [a, b] vs [a, b]
    # a: pred [1,4) vs gt [2,6): inter 2 / hull 5 = 0.4; b: [6,9) vs [6,8): 2/3
    assert s["f1@10"] == pytest.approx(100.0) and s["f1@25"] == pytest.approx(100.0)
    assert s["f1@50"] == pytest.approx(100 * 0.5)  # tp 1, fp 1, fn 1


@pytest.mark.parametrize("seed", range(3))
def test_segmentation_matches_reference(seed):
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(4):
        n = int(rng.integers(20, 60))
        gts.append(list(np.repeat(rng.integers(0, 4, size=n // 5 + 1), 5)[:n]))
        preds.append(list(np.repeat(rng.integers(0, 4, size=n // 3 + 1), 3)[:n]))
    for bg in ((0,), ()):
        assert_close(segmentation_scores(preds, gts, background=bg), ref.segmentation_reference(preds, gts, bg))


def test_segmentation_length_error():
    with pytest.raises(ValueError, match="predicted frame labels"):
        segmentation_scores([[1, 1]], [[1, 1, 1]])


# ---- the full EK-100 MIR size (its time: bench/mir_scorer.py) ---------------------------------

@pytest.mark.slow  # ~15 s on 2 cores; the tie / block tests above cover the same code path
def test_mir_full_size_runs_without_warnings():
    rng = np.random.default_rng(0)
    sim = rng.standard_normal((9668, 3842)).astype(np.float32)
    rel = (rng.random((9668, 3842)) < 0.01) * rng.choice([0.25, 0.5, 1.0], size=(9668, 3842))
    rel[np.arange(3842), np.arange(3842)] = 1.0
    rel[np.arange(3842, 9668), rng.integers(0, 3842, 9668 - 3842)] = 1.0
    rel[rng.integers(0, 9668, 3842), np.arange(3842)] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = ek100_mir_scores(sim, rel)
    assert all(0 <= v <= 100 for v in s.values())
