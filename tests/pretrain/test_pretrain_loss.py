"""The gathered InfoNCE: value equals the single-process loss on the concatenated batch, and each
rank's gradient equals the full-batch gradient restricted to its own rows."""
import math
import multiprocessing as mp
import queue
import time

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
    with pytest.raises(ValueError, match=r"^video and text features must both be \[B, E\]; got \(2, 4\) and \(3, 4\)$"):
        clip_loss(torch.zeros(2, 4), torch.zeros(3, 4), 1.0)


@pytest.mark.parametrize("shape", [(2, 3, 4), (4,)])
def test_features_that_are_not_a_matrix_are_rejected_even_when_shapes_agree(shape):
    with pytest.raises(ValueError, match=r"\[B, E\]"):
        clip_loss(torch.zeros(shape), torch.zeros(shape), 1.0)


def test_float_and_tensor_temperatures_agree_and_scale_the_logits():
    # logits = scale * S; at scale 2 the known answer is the scale-1 formula on 2 * S
    v2t = sum(math.log(sum(math.exp(2 * x) for x in r)) - 2 * r[i] for i, r in enumerate(_S.tolist())) / 3
    t2v = sum(math.log(sum(math.exp(2 * x) for x in c)) - 2 * c[i] for i, c in enumerate(_S.t().tolist())) / 3
    eye = torch.eye(3, dtype=torch.float64)
    as_float = clip_loss(_S, eye, 2.0)
    as_tensor = clip_loss(_S, eye, torch.tensor(2.0))
    assert as_float.loss.item() == pytest.approx(0.5 * (v2t + t2v), rel=1e-6)
    assert as_tensor.loss.item() == pytest.approx(0.5 * (v2t + t2v), rel=1e-6)


class _FakeDist:
    """Stands in for ``torch.distributed`` on rank ``rank``: ``all_gather`` fills the output list
    with the other ranks' tensors taken from ``per_call`` (one list of per-rank tensors per call,
    in call order) and this rank's own (detached) argument at ``rank``."""

    def __init__(self, rank, per_call):
        self.rank, self.per_call, self.sent = rank, list(per_call), []

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self):
        return len(self.per_call[0])

    def get_rank(self):
        return self.rank

    def all_gather(self, out, x):
        parts = self.per_call.pop(0)
        assert len(out) == len(parts), "one output slot per rank"
        self.sent.append(x)
        for r, slot in enumerate(out):
            slot.copy_(x if r == self.rank else parts[r])


def test_gather_puts_ranks_in_order_and_only_local_rows_carry_gradient(monkeypatch):
    import pretrain.loss as loss_mod

    world, rank = 3, 1
    parts = [torch.full((2, 4), float(r), dtype=torch.float64) for r in range(world)]
    x = parts[rank].clone().requires_grad_(True)
    fake = _FakeDist(rank, [parts])
    monkeypatch.setattr(loss_mod, "dist", fake)
    out = gather_with_local_grad(x)
    expected = torch.tensor([0.0] * 2 + [1.0] * 2 + [2.0] * 2, dtype=torch.float64)[:, None].expand(6, 4)
    assert torch.equal(out.detach(), expected)
    assert not fake.sent[0].requires_grad, "the tensor sent to the other ranks must be detached"
    weights = torch.arange(24, dtype=torch.float64).reshape(6, 4)
    (out * weights).sum().backward()
    assert torch.equal(x.grad, weights[2:4]), "this rank's rows must pass the gradient through"


def test_gather_is_the_identity_without_a_group_or_with_one_rank(monkeypatch):
    import pretrain.loss as loss_mod

    x = torch.randn(2, 4)
    assert gather_with_local_grad(x) is x  # no process group initialised in this process
    monkeypatch.setattr(loss_mod, "dist", _FakeDist(0, [[x]]))
    assert gather_with_local_grad(x) is x


@pytest.mark.parametrize("rank", [0, 1])
def test_loss_on_one_rank_with_a_faked_group_equals_the_full_batch(monkeypatch, rank):
    """The all-gather branch in process: rank ``rank`` of 2 sees the whole batch's loss and
    accuracies, and its gradient is the full-batch gradient's rows of its own samples."""
    import pretrain.loss as loss_mod

    v, noise = _features(seed=3)
    t = F.normalize(v + 0.1 * noise, dim=-1)  # texts close to their videos...
    t[1] = v[4]  # ...except text 1, which is video 4 (on the other rank): v2t 4/6, t2v 5/6
    rows = slice(rank * B, (rank + 1) * B)
    monkeypatch.setattr(loss_mod, "dist", _FakeDist(rank, [[v[:B], v[B:]], [t[:B], t[B:]]]))
    lv, lt = v[rows].clone().requires_grad_(True), t[rows].clone().requires_grad_(True)
    out = clip_loss(lv, lt, 2.0)
    out.loss.backward()
    vr, tr = v.clone().requires_grad_(True), t.clone().requires_grad_(True)
    ref = _reference(vr.float(), tr.float(), 2.0)
    ref.backward()
    logits = (v @ t.t()).numpy()
    labels = list(range(WORLD * B))
    acc_v2t = sum(int(logits[i].argmax() == i) for i in labels) / len(labels)
    acc_t2v = sum(int(logits[:, i].argmax() == i) for i in labels) / len(labels)
    assert (acc_v2t, acc_t2v) == (pytest.approx(4 / 6), pytest.approx(5 / 6))  # the example's design
    assert out["global_batch"] == WORLD * B
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert (out["acc_v2t"], out["acc_t2v"]) == (pytest.approx(acc_v2t), pytest.approx(acc_t2v))
    assert torch.allclose(lv.grad, vr.grad[rows], rtol=1e-4, atol=1e-6)
    assert torch.allclose(lt.grad, tr.grad[rows], rtol=1e-4, atol=1e-6)


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


def _collect(q, procs, n, timeout):
    """``n`` results from the ranks; fails as soon as a rank dies (the others would wait for it
    in a collective until gloo's own 30-minute timeout)."""
    results, deadline = [], time.monotonic() + timeout
    while len(results) < n:
        try:
            results.append(q.get(timeout=0.2))
        except queue.Empty:
            died = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if died:
                for p in procs:
                    p.kill()
                pytest.fail(f"a rank exited with {died} before reporting")
            if time.monotonic() > deadline:
                pytest.fail(f"ranks did not report within {timeout} s")
    return results


def test_two_rank_gather_equals_concatenated_batch(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, tmp_path / "store", q)) for r in range(WORLD)]
    for p in procs:
        p.start()
    try:
        results = sorted(_collect(q, procs, WORLD, timeout=120))
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * WORLD
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
