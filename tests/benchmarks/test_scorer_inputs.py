"""The scorers' contracts at their edges: every input check raises with the message that says what
to change (exact text: the condition and its wording), defaults that decide numbers (the
background label, the EK-100 action id), and warnings. Expected values are worked out by hand
in the comments, not read from the scorers."""
import re
import warnings

import numpy as np
import pytest

from egohod.benchmarks.scorers import (classification_scores, ek100_action_scores, ek100_mir_scores, egomcq_scores,
                                       mean_class_accuracy, mq_scores, nlq_scores, nlq_scores_from_json,
                                       segmentation_scores)
from egohod.benchmarks.scorers import segmentation as seg
from egohod.benchmarks.scorers._checks import require_finite
from egohod.benchmarks.scorers.classification import ek100_action_rankings
from egohod.benchmarks.scorers.retrieval import check_mir_inputs


def _raises(fn, message, exc=ValueError):
    with pytest.raises(exc) as err:
        fn()
    assert err.value.args[0] == message
    return err


S = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])


@pytest.mark.parametrize("call, message", [
    (lambda: classification_scores(np.zeros(3), [0, 1, 2]),
     "scores must be 2-D [n_samples, n_classes], got shape (3,)"),
    (lambda: classification_scores(S, [1]),
     "labels must be 1-D with one entry per row of scores (2), got shape (1,)"),
    (lambda: classification_scores(S, [[1, 0]]),
     "labels must be 1-D with one entry per row of scores (2), got shape (1, 2)"),
    (lambda: classification_scores(np.zeros((0, 3)), np.zeros(0, int)),
     "scores has no rows; need at least one sample"),
    (lambda: classification_scores(S, [0.5, 1.0]),
     "labels must be integer class indices, got dtype float64"),
    (lambda: classification_scores(S, ["a", "b"]),
     "labels must be integer class indices, got dtype <U1"),
    (lambda: classification_scores(S, [0, 3]),
     "labels must lie in [0, 2] (the columns of scores), got range [0, 3]"),
    (lambda: classification_scores(S, [-1, 2]),
     "labels must lie in [0, 2] (the columns of scores), got range [-1, 2]"),
    (lambda: classification_scores(np.array([[np.nan, 0, 0], [0, np.inf, -np.inf]]), [0, 1]),
     "scores contains 3 non-finite value(s) (-inf, NaN, inf), the first at index (0, 0); "
     "every entry must be a finite number"),
    (lambda: mean_class_accuracy([0, 1], [0]),
     "predictions (2,) and labels (1,) must be equal-length 1-D"),
    (lambda: mean_class_accuracy([[0]], [[0]]),
     "predictions (1, 1) and labels (1, 1) must be equal-length 1-D"),
    (lambda: mean_class_accuracy([], []),
     "predictions (0,) and labels (0,) must be equal-length 1-D"),
    (lambda: mean_class_accuracy([0], [0], over="classes"),
     "over must be 'labels' or 'labels_and_predictions', got 'classes'"),
    (lambda: egomcq_scores(S, [1, 0], [1]),
     "types must have one entry per question (2), got shape (1,)"),
    (lambda: egomcq_scores(S, [1, 0], [1, 3]),
     "EgoMCQ types must be 1 (inter-video) or 2 (intra-video), found [3]"),
    (lambda: egomcq_scores(S, [1, 5], [1, 2]),
     "labels must lie in [0, 2] (the columns of EgoMCQ scores), got range [1, 5]"),
    (lambda: ek100_action_rankings(np.zeros((2, 3)), np.zeros((3, 4))),
     "verb scores (2, 3) and noun scores (3, 4) must be [N, n_verbs] and [N, n_nouns] with the same N"),
    (lambda: ek100_action_rankings(np.zeros(3), np.zeros((1, 4))),
     "verb scores (3,) and noun scores (1, 4) must be [N, n_verbs] and [N, n_nouns] with the same N"),
    (lambda: ek100_action_rankings(np.zeros((1, 3)), np.zeros(4)),
     "verb scores (1, 3) and noun scores (4,) must be [N, n_verbs] and [N, n_nouns] with the same N"),
    (lambda: ek100_action_rankings(np.zeros(1), np.zeros((1, 4))),
     "verb scores (1,) and noun scores (1, 4) must be [N, n_verbs] and [N, n_nouns] with the same N"),
    (lambda: ek100_action_scores(S, S, [0, 7], [0, 1]),
     "labels must lie in [0, 2] (the columns of verb scores), got range [0, 7]"),
    (lambda: ek100_action_scores(S, S[:1], [0, 1], [0]),
     "verb scores have 2 rows but noun scores 1"),
    (lambda: ek100_action_scores(S, S, [0, 1], [0, 9]),
     "labels must lie in [0, 2] (the columns of noun scores), got range [0, 9]"),
])
def test_classification_inputs(call, message):
    _raises(call, message)


def test_integral_float_labels_are_accepted_as_class_indices():
    # scores' argmax rows: 1, 0 -> labels 1.0, 0.0 are both right
    assert classification_scores(S, np.array([1.0, 0.0]))["top1"] == 100.0


def test_action_ids_are_verb_times_1000_plus_noun():
    verbs = np.array([[0.0, 0.0, 0.0, 5.0]])          # verb 3
    nouns = np.zeros((1, 8))
    nouns[0, 7] = 5.0                                  # noun 7
    assert ek100_action_rankings(verbs, nouns, top_n=2)[0, 0] == 3 * 1000 + 7
    out = ek100_action_scores(verbs, nouns, [3], [7])
    assert out["action_top1"] == 100.0


def test_action_ranking_lists_every_pair_by_the_product_of_the_softmaxes():
    # p(verb) = softmax([2, 1]) = [0.731, 0.269], p(noun) = softmax([0, 3]) = [0.047, 0.953];
    # products: (0, 1) 0.697 > (1, 1) 0.256 > (0, 0) 0.034 > (1, 0) 0.013
    ranking = ek100_action_rankings(np.array([[2.0, 1.0]]), np.array([[0.0, 3.0]]))
    assert ranking.tolist() == [[1, 1001, 0, 1000]]


@pytest.mark.parametrize("call, message", [
    (lambda: nlq_scores([[[0, 1]]], [[0, 1, 2]]), "ground_truth must be [N, 2] windows, got shape (1, 3)"),
    (lambda: nlq_scores([[[0, 1]]], [0, 1]), "ground_truth must be [N, 2] windows, got shape (2,)"),
    (lambda: nlq_scores([[[0, 1]], [[0, 1]]], [[0, 1]]), "2 prediction lists for 1 ground-truth windows"),
    (lambda: nlq_scores([], np.zeros((0, 2))), "no queries to evaluate"),
    (lambda: nlq_scores([[[0, 1]], []], [[0, 1], [1, 2]]), "query 1 has no predicted window"),
    (lambda: mq_scores({"v": [("a", 0, 1, 9)]}, {}),
     "each ground-truth (label, start, end) entry must have 3 fields, got ('a', 0, 1, 9)"),
    (lambda: mq_scores({"v": [("a", 0, 1)]}, {"v": [("a", 0, 1)]}),
     "each prediction (label, start, end, score) entry must have 4 fields, got ('a', 0, 1)"),
    (lambda: mq_scores({"v": []}, {}), "MQ ground truth has no segments"),
])
def test_localization_inputs(call, message):
    _raises(call, message)


def test_nlq_json_layout_errors_name_what_is_missing():
    _raises(lambda: nlq_scores_from_json({}, {"videos": []}),
            "NLQ predictions JSON needs a 'results' list of {clip_uid, annotation_uid, query_idx, predicted_times}",
            KeyError)
    _raises(lambda: nlq_scores_from_json({"results": []}, {}),
            "NLQ ground-truth JSON needs a 'videos' list (official nlq_val.json layout)", KeyError)
    gt = {"videos": [{"clips": [{"clip_uid": "c", "annotations": [
        {"annotation_uid": "a", "language_queries": [{"clip_start_sec": 0.0, "clip_end_sec": 2.0}]}]}]}]}
    pred = {"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 1, "predicted_times": [[0, 1]]}]}
    _raises(lambda: nlq_scores_from_json(pred, gt),
            "prediction for clip 'c', annotation 'a', query 1 has no ground truth", KeyError)
    # the right key: IoU of [0, 1] with [0, 2] is 0.5 -> not > 0.5, but > 0.3
    pred["results"][0]["query_idx"] = 0
    out = nlq_scores_from_json(pred, gt)
    assert (out["r1_iou0.3"], out["r1_iou0.5"], out["miou"]) == (100.0, 0.0, 50.0)


@pytest.mark.parametrize("call, message", [
    (lambda: check_mir_inputs(np.zeros(3), np.zeros(3)),
     "similarity matrix must be 2-D (clips x captions), got shape (3,)"),
    (lambda: check_mir_inputs(np.zeros((2, 3)), np.zeros((3, 2))),
     "relevancy matrix shape (3, 2) does not match similarity matrix shape (2, 3) (both must be clips x captions)"),
    (lambda: check_mir_inputs(np.zeros((2, 2), complex), np.zeros((2, 2))),
     "similarity matrix must be real-valued, got dtype complex128"),
    (lambda: check_mir_inputs(np.array([["a", "b"]]), np.zeros((1, 2))),
     "similarity matrix must be real-valued, got dtype <U1"),
    (lambda: check_mir_inputs(np.zeros((2, 2)), np.zeros((2, 2), complex)),
     "relevancy matrix must be real-valued, got dtype complex128"),
    (lambda: check_mir_inputs(np.zeros((1, 2)), np.array([["a", "b"]])),
     "relevancy matrix must be real-valued, got dtype <U1"),
    (lambda: check_mir_inputs(np.zeros((1, 2)), np.array([[0.0, np.nan]])),
     "relevancy matrix contains 1 non-finite value(s) (NaN), the first at index (0, 1); "
     "every entry must be a finite number"),
])
def test_retrieval_inputs(call, message):
    _raises(call, message)


def test_mir_inputs_come_back_as_arrays_with_float64_relevancy():
    sim, rel = check_mir_inputs([[1, 2]], [[0, 1]])
    assert isinstance(sim, np.ndarray) and sim.tolist() == [[1, 2]]
    assert rel.dtype == np.float64 and rel.tolist() == [[0.0, 1.0]]


def test_a_query_without_relevant_items_warns_and_gives_nan():
    # clip 1 and caption 1 are relevant to nothing: their queries' nDCG is undefined in both
    # directions, and the means are NaN (official behaviour), with a warning that says so
    sim = np.array([[0.9, 0.1], [0.2, 0.8]])
    rel = np.array([[1.0, 0.0], [0.0, 0.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = ek100_mir_scores(sim, rel)
    messages = {str(w.message) for w in caught if w.category is RuntimeWarning}
    for metric in ("mAP", "nDCG"):
        for direction in ("video->text", "text->video"):
            assert (f"{metric} {direction}: 1 of 2 queries have no relevant item; the mean is NaN "
                    "(as in the official evaluation)") in messages, messages
    assert all(np.isnan(out[k]) for k in ("map_v2t", "map_t2v", "ndcg_v2t", "ndcg_t2v"))


def test_require_finite_names_the_kind_count_and_first_index():
    require_finite(np.zeros(3), "x")  # finite: no error
    _raises(lambda: require_finite(np.array([1.0, -np.inf, 2.0, -np.inf]), "feature row"),
            "feature row contains 2 non-finite value(s) (-inf), the first at index (1,); "
            "every entry must be a finite number")


def test_background_is_the_label_background_by_default():
    # runs: background x2, a x2, background, b -> segments a [2, 4) and b [5, 6)
    labels, starts, ends = seg.segments(["background", "background", "a", "a", "background", "b"])
    assert (labels, starts.tolist(), ends.tolist()) == (["a", "b"], [2, 5], [4, 6])
    pred, gt = ["background", "a", "a", "a"], ["background", "a", "a", "b"]
    # segments: prediction [a [1, 4)], ground truth [a [1, 3), b [3, 4)]
    # edit: 1 insertion over 2 segments -> 50; F1@50: a matches (IoU 2/3), b is missed -> tp 1, fp 0, fn 1
    assert seg.edit_score(pred, gt) == pytest.approx(50.0)
    assert tuple(seg.f1_counts(pred, gt, 0.5)) == (1, 0, 1)
    out = segmentation_scores([pred], [gt])
    assert out["acc"] == pytest.approx(75.0) and out["edit"] == pytest.approx(50.0)
    assert out["f1@50"] == pytest.approx(100 * 2 * (1.0 * 0.5) / 1.5)  # P = 1, R = 1/2


@pytest.mark.parametrize("call, message", [
    (lambda: seg.segments([]), "empty frame-label sequence"),
    (lambda: segmentation_scores([], []), "need one prediction per video and at least one video: 0 vs 0"),
    (lambda: segmentation_scores([["a"]], [["a"], ["b"]]),
     "need one prediction per video and at least one video: 1 vs 2"),
    (lambda: segmentation_scores([["a"], ["a"]], [["a"], ["a", "b"]]),
     "video 1: 1 predicted frame labels for 2 ground-truth frames"),
])
def test_segmentation_inputs(call, message):
    _raises(call, message)


def test_edit_of_a_video_with_no_foreground_on_either_side_is_nan():
    assert np.isnan(seg.edit_score(["background"] * 3, ["background"] * 2))


def test_topk_defaults_to_top1_and_top5():
    # 6 classes; the label ranks 0 (row 0) and 5 (row 1): top-1 1/2, top-5 1/2
    scores = np.array([[6, 5, 4, 3, 2, 1], [6, 5, 4, 3, 2, 1]], float)
    from egohod.benchmarks.scorers import topk_accuracy

    assert topk_accuracy(scores, [0, 5]) == {1: 50.0, 5: 50.0}


def test_mean_class_accuracy_averages_over_the_label_classes_by_default():
    # labels 0, 0, 1; predictions 0, 2, 1: class 0 -> 1/2, class 1 -> 1/1: mean 75 %.
    # Over labels and predictions the never-labelled class 2 adds a 0: 50 %.
    assert mean_class_accuracy([0, 2, 1], [0, 0, 1]) == pytest.approx(75.0)
    assert mean_class_accuracy([0, 2, 1], [0, 0, 1], over="labels_and_predictions") == pytest.approx(50.0)


def test_mq_recall_counts_ground_truth_segments_not_predictions():
    # two ground-truth segments of label a; both predictions overlap only the first (IoU 1.0 and
    # 0.9): one of the two segments is found -> 50 % (counting predictions would give 100 %)
    gt = {"v": [("a", 0.0, 10.0), ("a", 20.0, 30.0)]}
    pred = {"v": [("a", 0.0, 10.0, 0.9), ("a", 1.0, 10.0, 0.8)]}
    assert mq_scores(gt, pred)["recall1x_tiou0.5"] == pytest.approx(50.0)


def test_per_row_ap_and_ndcg_rank_by_descending_similarity():
    from egohod.benchmarks.scorers.retrieval import average_precision_rows, ndcg_rows

    # ranked by similarity: item 0 (rel 0), item 2 (rel 0.5), item 1 (rel 1, the only rel == 1).
    # AP: graded precision at the hit (rank 3) = (0 + 0.5 + 1) / 3 = 0.5, over 1 relevant item.
    # nDCG, k = 2 non-zero relevancies: DCG = 0 / log2(2) + 0.5 / log2(3), IDCG = 1 + 0.5 / log2(3)
    sim, rel = np.array([[0.9, 0.1, 0.5]]), np.array([[0.0, 1.0, 0.5]])
    assert average_precision_rows(sim, rel).tolist() == pytest.approx([0.5])
    third = 0.5 / np.log2(3)
    assert ndcg_rows(sim, rel).tolist() == pytest.approx([third / (1 + third)])


def test_ndcg_breaks_similarity_ties_as_the_official_second_sort():
    # items 0 and 1 tie; the official ranking is argsort(s)[::-1]: item 1, item 0, item 2, so
    # the ranked relevancies are 0, 1, 0.5 and with k = 2: DCG = 1 / log2(3), IDCG = 1 + 0.5 / log2(3)
    sim, rel = np.array([[0.5, 0.5, 0.1]]), np.array([[1.0, 0.0, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # captions 1 and 2 have no rel == 1 clip
        out = ek100_mir_scores(sim, rel)
    expected = (1 / np.log2(3)) / (1 + 0.5 / np.log2(3))
    assert out["ndcg_v2t"] == pytest.approx(100 * expected)


def test_the_no_relevant_item_warning_points_at_the_caller():
    sim, rel = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1.0, 0.0], [0.0, 0.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ek100_mir_scores(sim, rel)
    assert caught and all(w.filename == __file__ for w in caught if w.category is RuntimeWarning)


def test_window_iou_of_windows_shorter_than_a_second():
    from egohod.benchmarks.scorers.localization import window_iou

    # intersection [0, 0.25], union [0, 0.5]
    assert window_iou(np.array([0.0, 0.5]), np.array([0.0, 0.25])) == pytest.approx(0.5)


def test_f1_counts_of_a_video_without_ground_truth_segments():
    # every predicted segment is a false positive; nothing to miss
    assert tuple(seg.f1_counts(["a", "a", "b"], ["background"] * 3, 0.5)) == (0, 2, 0)


def test_action_ranking_survives_large_scores_and_keeps_100_by_default():
    # the softmax must subtract the maximum: exp(500) overflows; the order is the one of the
    # small-score example (verbs 1 > 0 apart, nouns 1 >> 0)
    ranking = ek100_action_rankings(np.array([[500.0, 400.0]]), np.array([[0.0, 300.0]]))
    assert ranking.tolist() == [[1, 1001, 0, 1000]]
    # 11 verbs x 10 nouns = 110 pairs: the official scorer keeps the best 100
    assert ek100_action_rankings(np.zeros((1, 11)), np.zeros((1, 10))).shape == (1, 100)


@pytest.mark.parametrize("gts, preds, thr, expected", [
    # a duplicate of a matched detection is a false positive: tp 1 0 1 of 2 ground truths ->
    # recall .5 .5 1, precision 1 .5 .667 -> AP = .5 * 1 + .5 * .667
    ([(0, 10), (20, 30)], [(0, 10), (0, 9), (20, 29)], 0.5, 0.5 + 0.5 * 2 / 3),
    # a detection takes one ground truth only: the second detection still finds the other -> 1
    ([(0, 10), (0, 9.5)], [(0, 10), (0, 9.5)], 0.5, 1.0),
    # the best-overlapping ground truth is taken first: (0, 10) goes to the first detection, the
    # second overlaps only that one -> tp 1 0 -> AP .5 (taking (4, 10) first would give 1)
    ([(0, 10), (4, 10)], [(0, 10), (0, 6)], 0.4, 0.5),
    # the second detection's best ground truth (0, 10) is taken: it matches its next best (0, 9.5)
    ([(0, 10), (0, 9.5)], [(0, 10), (0, 9.8)], 0.5, 1.0),
])
def test_detection_ap_greedy_matching(gts, preds, thr, expected):
    from egohod.benchmarks.scorers.localization import detection_ap

    scores = np.linspace(0.9, 0.5, len(preds))  # in the listed order
    ap = detection_ap(["v"] * len(gts), np.array(gts, float), ["v"] * len(preds), np.array(preds, float),
                      scores, [thr])
    assert ap.tolist() == pytest.approx([expected])


def test_mq_recall_needs_iou_strictly_above_the_threshold_and_a_class_without_predictions_has_ap_0():
    # IoU of (0, 5) with (0, 10) is exactly 0.5: not retrieved at 0.5
    gt = {"v": [("a", 0.0, 10.0)], "w": [("b", 0.0, 10.0)]}
    out = mq_scores(gt, {"v": [("a", 0.0, 5.0, 0.9)]}, tious=(0.3,))
    assert out["recall1x_tiou0.5"] == 0.0
    # class a: AP 1 at tIoU 0.3; class b has no prediction: AP 0 -> mean 50 %
    assert out["map_tiou0.3"] == pytest.approx(50.0)
