"""The gathered InfoNCE: value equals the single-process loss on the concatenated batch, and each
rank's gradient equals the full-batch gradient restricted to its own rows."""
import math
import multiprocessing as mp

import pytest
import torch
import torch.nn.functional as F

from pretrain.loss import clip_loss, gather_with_local_grad

WORLD, B, E = 2, 3, 8


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    v = F.normalize(torch.randn(WORLD * B, E, generator=g, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.randn(WORLD * B, E, generator=g, dtype=torch.float64), dim=-1)
    return v, t


def _reference(v, t, scale):
    logits = scale * v @ t.t()
    labels = torch.arange(len(v))
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def test_single_process_matches_manual_symmetric_infonce():
    v, t = _features()
    out = clip_loss(v, t, torch.tensor(10.0))
    manual = 0.0
    logits = 10.0 * v @ t.t()
    n = len(v)
    for i in range(n):
        manual += -torch.log_softmax(logits[i], 0)[i] / (2 * n) - torch.log_softmax(logits[:, i], 0)[i] / (2 * n)
    assert out.loss.item() == pytest.approx(manual.item(), rel=1e-6)
    assert 0.0 <= out["acc_v2t"] <= 1.0 and out["global_batch"] == n


def test_perfect_alignment_gives_low_loss_and_full_accuracy():
    v, _ = _features()
    out = clip_loss(v, v.clone(), math.exp(math.log(1 / 0.07)))
    assert out["acc_v2t"] == out["acc_t2v"] == 1.0
    assert out.loss.item() < _reference(*_features(), 1 / 0.07).item()


# similarity with every video's best text correct, but text 1's best video is video 0:
# video->text top-1 = 3/3, text->video top-1 = 2/3 (an accuracy on the wrong axis gives 3/3)
_S = torch.tensor([[0.9, 0.8, 0.0],
                   [0.0, 0.7, 0.0],
                   [0.0, 0.0, 0.5]], dtype=torch.float64)


def test_accuracies_are_computed_on_their_own_axis():
    eye = torch.eye(3, dtype=torch.float64)
    out = clip_loss(_S, eye, 1.0)  # logits = video @ text.T = S: rows are videos, columns texts
    assert out["acc_v2t"] == 1.0
    assert out["acc_t2v"] == pytest.approx(2 / 3)
    out = clip_loss(_S.t().contiguous(), eye, 1.0)  # the transposed problem swaps the two
    assert out["acc_v2t"] == pytest.approx(2 / 3)
    assert out["acc_t2v"] == 1.0


def test_loss_known_answer_on_the_asymmetric_example():
    # -log softmax by hand: each direction is the mean over its rows of log(sum exp) - positive
    import math as m

    rows = [[0.9, 0.8, 0.0], [0.0, 0.7, 0.0], [0.0, 0.0, 0.5]]
    cols = [list(c) for c in zip(*rows)]
    v2t = sum(m.log(sum(m.exp(x) for x in r)) - r[i] for i, r in enumerate(rows)) / 3
    t2v = sum(m.log(sum(m.exp(x) for x in c)) - c[i] for i, c in enumerate(cols)) / 3
    out = clip_loss(_S, torch.eye(3, dtype=torch.float64), 1.0)
    assert out.loss.item() == pytest.approx(0.5 * (v2t + t2v), rel=1e-6)
    assert v2t != pytest.approx(t2v)  # the example tells the two directions apart


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\[B, E\]"):
        clip_loss(torch.zeros(2, 4), torch.zeros(3, 4), 1.0)


def _worker(rank, store, q):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    v, t = _features()
    lv = v[rank * B:(rank + 1) * B].clone().requires_grad_(True)
    lt = t[rank * B:(rank + 1) * B].clone().requires_grad_(True)
    gathered = gather_with_local_grad(lv)
    out = clip_loss(lv, lt, torch.tensor(1 / 0.07, dtype=torch.float64))
    out.loss.backward()
    # plain lists: tensors sent through a queue die with the sending process
    q.put((rank, out.loss.item(), lv.grad.tolist(), lt.grad.tolist(), gathered.detach().tolist(), out["acc_v2t"]))
    dist.barrier()
    dist.destroy_process_group()


def test_two_rank_gather_equals_concatenated_batch(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, tmp_path / "store", q)) for r in range(WORLD)]
    for p in procs:
        p.start()
    results = sorted(q.get(timeout=120) for _ in range(WORLD))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    v, t = _features()
    vr, tr = v.clone().requires_grad_(True), t.clone().requires_grad_(True)
    # clip_loss computes the logits in float32; compare against float32 on the same features
    ref = _reference(vr.float(), tr.float(), torch.tensor(1 / 0.07))
    ref.backward()
    ref_out = clip_loss(v, t, torch.tensor(1 / 0.07))
    for rank, loss, gv, gt, gathered, acc in results:
        gv, gt, gathered = (torch.tensor(x, dtype=torch.float64) for x in (gv, gt, gathered))
        assert torch.equal(gathered, v), "gathered features must be in rank order"
        assert loss == pytest.approx(ref.item(), rel=1e-6)
        assert acc == ref_out["acc_v2t"]
        rows = slice(rank * B, (rank + 1) * B)
        assert torch.allclose(gv, vr.grad[rows], rtol=1e-4, atol=1e-6)
        assert torch.allclose(gt, tr.grad[rows], rtol=1e-4, atol=1e-6)
