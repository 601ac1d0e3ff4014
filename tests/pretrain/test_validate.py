"""Known answers for the held-out retrieval metrics of pretrain/validate.py.

The example: 6 clips, captions A B A C D E (clips 0 and 2 share caption A), and a similarity
matrix chosen by hand (rows: videos, columns: texts; every row and column free of ties):

          t0    t1    t2    t3    t4    t5
    v0  .30   .05   .40   .02   .04   .010     best text t2: caption A = v0's A  -> hit (duplicate caption)
    v1  .03   .30   .01   .35   .02   .004     best text t3 (C != B)            -> miss
    v2  .02   .04   .30   .01   .03   .005
    v3  .04   .01   .03   .30   .05   .002
    v4  .05   .02   .04   .03   .30   .003
    v5  .20   .03   .02   .05   .06   .015     best t0 (A != E) -> miss; t5 ranks 6th -> miss at R@5 too

video->text: R@1 4/6 (misses v1, v5), R@5 5/6 (misses v5).
text->video (columns): t3's best video is v1 (B != C) -> miss; every other column's best video
matches (t2's best is v0, caption A); R@1 5/6, R@5 6/6. Recall computed from the video->text
ranking, or without caption matching, or without normalising, gives other numbers.
"""
import pytest
import torch

from pretrain.validate import retrieval_metrics, validate_retrieval

S = torch.tensor([[.30, .05, .40, .02, .04, .010],
                  [.03, .30, .01, .35, .02, .004],
                  [.02, .04, .30, .01, .03, .005],
                  [.04, .01, .03, .30, .05, .002],
                  [.05, .02, .04, .03, .30, .003],
                  [.20, .03, .02, .05, .06, .015]], dtype=torch.float64)
CAPTIONS = ["A", "B", "A", "C", "D", "E"]
EXPECTED = {"num_clips": 6, "num_captions": 5, "v2t_r1": 100 * 4 / 6, "v2t_r5": 100 * 5 / 6,
            "t2v_r1": 100 * 5 / 6, "t2v_r5": 100.0}


def _features(video_scale=None):
    """Unit video rows and one-hot texts whose dot products are exactly ``S``."""
    n = len(S)
    video = torch.zeros(n, n + 1, dtype=torch.float64)
    video[:, :n] = S
    video[:, n] = (1 - (S * S).sum(1)).sqrt()  # slack dimension: unit rows without changing v @ t
    text = torch.eye(n, n + 1, dtype=torch.float64)
    if video_scale is not None:
        video = video * video_scale[:, None]
    return video, text


def _reference(sim, captions, k):
    """Recall@k by sorting plain lists (independent of torch.topk)."""
    n = len(captions)

    def hits(score_of):  # score_of(query, item)
        out = 0
        for q in range(n):
            ranked = sorted(range(n), key=lambda j: -score_of(q, j))[:k]
            out += any(captions[j] == captions[q] for j in ranked)
        return 100.0 * out / n

    return hits(lambda q, j: float(sim[q, j])), hits(lambda q, j: float(sim[j, q]))


def test_recall_known_answers():
    v, t = _features()
    out = retrieval_metrics(v, t, CAPTIONS)
    assert set(out) == set(EXPECTED)
    for key, want in EXPECTED.items():
        assert out[key] == pytest.approx(want), key


def test_hand_answers_match_a_sorting_reference():
    for k in (1, 2, 5):
        v2t, t2v = _reference(S, CAPTIONS, k)
        out = retrieval_metrics(*_features(), CAPTIONS, ks=(k,))
        assert (out[f"v2t_r{k}"], out[f"t2v_r{k}"]) == (pytest.approx(v2t), pytest.approx(t2v))
    assert _reference(S, CAPTIONS, 1) == (pytest.approx(EXPECTED["v2t_r1"]), pytest.approx(EXPECTED["t2v_r1"]))


def test_features_are_normalised_before_ranking():
    # scaling a video row changes raw column rankings (text->video) unless rows are normalised
    scale = torch.tensor([0.2, 5.0, 1.0, 3.0, 0.5, 7.0], dtype=torch.float64)
    out = retrieval_metrics(*_features(scale), CAPTIONS)
    assert out["t2v_r1"] == pytest.approx(EXPECTED["t2v_r1"]) and out["v2t_r1"] == pytest.approx(EXPECTED["v2t_r1"])


def test_k_larger_than_the_set_counts_everything():
    out = retrieval_metrics(*_features(), CAPTIONS, ks=(10,))
    assert out["v2t_r10"] == out["t2v_r10"] == 100.0


def test_duplicate_captions_are_not_misses():
    # the same features with distinct captions: v0's best text t2 is now a miss (and t2's best video v0)
    out = retrieval_metrics(*_features(), ["A", "B", "A2", "C", "D", "E"])
    assert out["v2t_r1"] == pytest.approx(100 * 3 / 6) and out["t2v_r1"] == pytest.approx(100 * 4 / 6)
    assert out["num_captions"] == 6


class _Record:
    def __init__(self, text):
        self.texts = [text]


class _Loader:
    """Batches of clip indices in a shuffled order; the model looks the features up by index."""

    def __init__(self, order, batch):
        self.dataset = type("D", (), {"records": [_Record(c) for c in CAPTIONS]})()
        self.batches = [order[i:i + batch] for i in range(0, len(order), batch)]

    def __iter__(self):
        for idx in self.batches:
            i = torch.tensor(idx)
            yield {"video": i.float()[:, None], "video_slow": i.float()[:, None], "tokens": i[:, None],
                   "index": i}


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.v, self.t = (x.float() for x in _features())

    def encode_video_dual(self, fast, slow):
        assert torch.equal(fast, slow)
        return self.v[fast[:, 0].long()]

    def encode_video(self, fast):
        raise AssertionError("dual=True must use the dual-path embedding")

    def encode_text(self, tokens):
        return self.t[tokens[:, 0]]


def test_validate_retrieval_embeds_every_clip_and_matches_captions_by_index():
    model = _Model().train()
    out = validate_retrieval(model, _Loader([3, 0, 5, 1, 4, 2], batch=4), torch.device("cpu"), dual=True)
    for key, want in EXPECTED.items():
        assert out[key] == pytest.approx(want), key
    assert model.training, "validation must restore train mode"


def test_validate_retrieval_stops_at_max_clips():
    out = validate_retrieval(_Model(), _Loader([0, 1, 2, 3, 4, 5], batch=2), torch.device("cpu"), dual=True,
                             max_clips=3)
    # two batches (4 clips >= 3): clips 0-3, captions A B A C. v0 -> t2 (A), v1 -> t3 (miss), v2, v3 hit;
    # texts: t0 -> v0, t1 -> v1, t2 -> v0 (A), t3 -> v1 (miss)
    assert out["num_clips"] == 4 and out["num_captions"] == 3
    assert out["v2t_r1"] == 75.0 and out["t2v_r1"] == 75.0
