"""Training-step time of the Ego4D heads at their full size, on random inputs of Ego4D shapes.

    python bench/head_ego4d.py --device cuda              # prints one JSON document

* NLQ: VSLNet as ``configs/head/nlq/vslnet.yaml`` (width 128, rnn predictor), a batch of
  ``--nlq-batch`` queries (paper: 32) over ``max_pos_len`` = 128 positions of ``--dim``-d
  features and ``--query-tokens`` text tokens of ``--text-dim``.
* MQ: the ActionFormer-style detector as ``configs/head/mq/actionformer.yaml`` (width 384, 8
  levels, window 9), ``--mq-batch`` clips (ActionFormer: 2) of ``--mq-len`` features, 110 classes.

Each head runs ``--warmup`` untimed steps then ``--steps`` timed ones (forward, losses, backward,
AdamW step, synchronised); the JSON gives seconds per step and the peak GPU memory. Inputs are
random: timing only.
"""
from __future__ import annotations

import argparse
import time

import torch

from egohod.measure import emit, machine


def _time(step, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def nlq_step_seconds(args, device) -> float:
    from egohod.benchmarks.heads.vslnet import VSLNet, highlight_loss, span_loss

    model = VSLNet(args.dim, args.text_dim).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    b, t, lq = args.nlq_batch, model.options.max_pos_len, args.query_tokens
    video, query = torch.randn(b, t, args.dim, device=device), torch.randn(b, lq, args.text_dim, device=device)
    vmask, qmask = torch.ones(b, t, dtype=torch.bool, device=device), torch.ones(b, lq, dtype=torch.bool, device=device)
    start = torch.randint(0, t // 2, (b,), device=device)
    end = start + torch.randint(0, t // 2, (b,), device=device)
    marks = torch.zeros(b, t, device=device)

    def step():
        h, s, e = model(video, vmask, query, qmask)
        loss = span_loss(s, e, start, end) + 5.0 * highlight_loss(h, marks, vmask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _time(step, args.steps, args.warmup, device)


def mq_step_seconds(args, device) -> float:
    from egohod.benchmarks.heads.mq_head import ActionFormerHead, assign_targets, detection_losses

    model = ActionFormerHead(args.dim, 110).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.mq_batch, args.mq_len, args.dim, device=device)
    mask = torch.ones(args.mq_batch, args.mq_len, dtype=torch.bool, device=device)
    segments = torch.tensor([[10.0, 40.0], [200.0, 230.0], [500.0, 505.0]], device=device)
    labels = torch.tensor([3, 50, 99], device=device)

    def step():
        out = model(x, mask)
        points = model.points([o[0].shape[1] for o in out], device)
        targets = [assign_targets(points, segments, labels, 110, 1.5) for _ in range(args.mq_batch)]
        cls, reg, _ = detection_losses(out, torch.stack([t[0] for t in targets]), torch.stack([t[1] for t in targets]),
                                       100.0)
        opt.zero_grad(set_to_none=True)
        (cls + reg).backward()
        opt.step()

    return _time(step, args.steps, args.warmup, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dim", type=int, default=512, help="feature size (EgoVideo-B/L: 512)")
    ap.add_argument("--text-dim", type=int, default=512, help="text tower width (EgoVideo-B: 512)")
    ap.add_argument("--query-tokens", type=int, default=16)
    ap.add_argument("--nlq-batch", type=int, default=32)
    ap.add_argument("--mq-batch", type=int, default=2)
    ap.add_argument("--mq-len", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    from egohod.device import resolve_device

    device = resolve_device(args.device)
    torch.manual_seed(0)
    out = {"device": str(device), "inputs": "random (timing only)", **vars(args)}
    out["nlq_vslnet_s_per_step"] = nlq_step_seconds(args, device)
    out["mq_actionformer_s_per_step"] = mq_step_seconds(args, device)
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    out["machine"] = machine(device)
    emit(out)


if __name__ == "__main__":
    main()
