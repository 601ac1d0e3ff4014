"""Time fine-tuning steps (pretrain/finetune) on synthetic clips and project an EK-100 / EGTEA epoch, as JSON.

    python bench/finetune_step.py --model egovideo_b --task ek100-cls --batch 16 --steps 300   # GPU, bf16
    python bench/finetune_step.py --model egovideo_b --task ek100-mir --batch 16 --max-seconds 60
    python bench/finetune_step.py --model egovideo_l --task ek100-cls --batch 4 --grad-ckpt
    python bench/finetune_step.py --model egovideo_l --flops-only                            # any machine

The step is :func:`pretrain.step.train_step` with the task's model, loss and optimizer groups
(:mod:`pretrain.finetune.tasks`) on random, already normalised clips (data loading excluded).
``--steps`` timed steps after ``--warmup``, stopping early after ``--max-seconds``. FLOPs of one
step are counted by ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward); with
``--flops-only`` the count runs on the ``meta`` device (no compute, no GPU needed). The epoch
projection divides the training-set size (EK-100 train 67,217 clips, EGTEA split-1 train 8,299)
by the measured clips/s of one device; it excludes evaluation and data loading.
RANDOM WEIGHTS: timing only.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch

from egohod.measure import emit, machine
from pretrain.step import train_step

TRAIN_CLIPS = {"ek100-cls": 67217, "ek100-mir": 67217, "egtea": 8299}
NUM_CLASSES = {"ek100-cls": (97, 300), "egtea": (106,), "ek100-mir": ()}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="egovideo_b")
    p.add_argument("--task", default="ek100-cls", choices=sorted(TRAIN_CLIPS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop timing after this long")
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--layer-decay", type=float, default=0.75)
    p.add_argument("--flops-only", action="store_true", help="count one step's FLOPs on the meta device")
    return p.parse_args(argv)


def build(args, device):
    import egohod
    from pretrain.finetune.config import FtLossConfig
    from pretrain.finetune.tasks import FinetuneModel, make_loss_fn, param_groups

    encoder = egohod.create_model(args.model, num_frames=args.frames, adapter=False)
    model = FinetuneModel(encoder, NUM_CLASSES[args.task], 0.5)
    if args.grad_ckpt:
        encoder.set_grad_checkpointing(True)
    model.to(device)
    opt = torch.optim.AdamW(param_groups(model, 0.05, args.layer_decay), lr=1e-5, fused=device.type == "cuda")
    s = encoder.input_spec.image_size
    batch = {"video": torch.randn(args.batch, 3, args.frames, s, s, device=device)}
    if args.task == "ek100-mir":
        batch["tokens"] = torch.randint(1, 49000, (args.batch, 77), device=device)
        batch["tokens"][:, 20] = 49407  # EOT
        batch["weight"] = torch.ones(args.batch, device=device)
    else:
        batch["labels"] = torch.stack([torch.randint(c, (args.batch,), device=device) for c in NUM_CLASSES[args.task]], 1)
    return model, opt, batch, make_loss_fn(args.task, FtLossConfig())


def count_flops(args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model, opt, batch, loss_fn = build(args, torch.device("meta"))
    counter = FlopCounterMode(display=False)
    with counter:  # the task's forward and loss without the float() metrics (no values on meta)
        if args.task == "ek100-mir":
            from pretrain.finetune.losses import max_margin_ranking_loss

            loss = max_margin_ranking_loss(*model(batch["video"], batch["tokens"]))
        else:
            loss = sum(torch.nn.functional.cross_entropy(lg, batch["labels"][:, k])
                       for k, lg in enumerate(model(batch["video"])))
        loss.backward()
    return float(counter.get_total_flops())


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = {"benchmark": "finetune_step", "weights": "RANDOM WEIGHTS (timing only)", "model": args.model,
           "task": args.task, "batch": args.batch, "frames": args.frames, "grad_ckpt": args.grad_ckpt}
    flops = count_flops(args)
    out["model_tflop_per_step"] = flops / 1e12
    out["model_tflop_per_clip"] = flops / 1e12 / args.batch
    if args.flops_only:
        out["machine"] = machine("meta")
        emit(out)
        return out
    from egohod.device import resolve_device

    device = resolve_device(args.device, "--device")
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    torch.manual_seed(0)
    model, opt, batch, loss_fn = build(args, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    kw = {"autocast": autocast, "loss_fn": loss_fn}
    for _ in range(args.warmup):
        train_step(model, [batch], opt, **kw)
    sync()
    t0 = time.perf_counter()
    steps = 0
    while steps < args.steps and time.perf_counter() - t0 < args.max_seconds:
        res = train_step(model, [batch], opt, **kw)
        steps += 1
    sync()
    total = time.perf_counter() - t0
    clips_s = steps * args.batch / total
    out.update({
        "precision": precision, "steps_timed": steps, "seconds": total, "step_time_s": total / steps,
        "clips_per_s": clips_s, "achieved_tflops": flops * steps / total / 1e12, "loss": res.loss,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None,
        "train_clips": TRAIN_CLIPS[args.task],
        "epoch_hours_one_device": TRAIN_CLIPS[args.task] / clips_s / 3600,
        "machine": machine(device),
    })
    emit(out)
    return out


if __name__ == "__main__":
    main()
