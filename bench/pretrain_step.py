"""Throughput of one EgoVideo pretraining step (forward + backward + AdamW), printed as JSON.

    python bench/pretrain_step.py --model egovideo_b --batch 128                 # GPU, bf16
    python bench/pretrain_step.py --model egovideo_b --batch 2 --device cpu      # CPU smoke number
    python bench/pretrain_step.py --model egovideo_l --batch 8 --grad-ckpt
    python bench/pretrain_step.py --model egovideo_b --batch 64 --slow-frames 16 # dual-path co-training

The step is :func:`pretrain.step.train_step` (the one training uses) on random, already
normalised clips and random tokens, so the number excludes data loading. Model FLOPs of one
step are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, attention,
convolutions; forward + backward); utilisation = FLOPs / step time / peak. The peak defaults
to 989 TFLOP/s (H100/H200 dense bf16) on CUDA and is unknown on CPU unless ``--peak-tflops``.
Default: vision + text towers, 4 frames, no slow path (the setting of the upstream anchor:
520 clips/s on one H200 for EgoVideo-B at batch 128, 26% utilisation).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from egohod.device import resolve_device
from egohod.measure import emit, machine
from pretrain.step import train_step

H200_BF16_PEAK_TFLOPS = 989.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="egovideo_b")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--slow-frames", type=int, default=0, help="16 = dual-path co-training step (adapter path)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--vision-only", action="store_true", help="freeze the text tower (still encoded)")
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p.parse_args(argv)


def build(args, device):
    import egohod

    stage = "cotrain" if args.slow_frames else "contrastive"
    model = egohod.create_model(args.model, num_frames=args.frames, adapter=bool(args.slow_frames))
    model.set_trainable(stage)
    if args.vision_only:
        for p in model.textual.parameters():
            p.requires_grad_(False)
    if args.grad_ckpt:
        model.set_grad_checkpointing(True)
    model.to(device)
    if args.compile:
        model.compile()
    opt = torch.optim.AdamW([g for g in model.param_groups(0.01) if g["params"]], lr=1e-5,
                            fused=device.type == "cuda")
    s = model.input_spec.image_size
    batch = {"video": torch.randn(args.batch, 3, args.frames, s, s, device=device),
             "tokens": torch.randint(1, 49000, (args.batch, 77), device=device)}
    batch["tokens"][:, 20] = 49407  # EOT
    if args.slow_frames:
        batch["video_slow"] = torch.randn(args.batch, 3, args.slow_frames, s, s, device=device)
    return model, opt, batch


def count_step_flops(model, opt, batch, kw) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, [batch], opt, **kw)
    return float(counter.get_total_flops())


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model, opt, batch = build(args, device)
    kw = {"autocast": autocast, "scaler": scaler}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        train_step(model, [batch], opt, **kw)
    sync()
    flops = count_step_flops(model, opt, batch, kw)
    times = []
    for _ in range(args.steps):
        sync()
        t0 = time.perf_counter()
        res = train_step(model, [batch], opt, **kw)
        sync()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    peak = args.peak_tflops if args.peak_tflops else (H200_BF16_PEAK_TFLOPS if device.type == "cuda" else None)
    achieved = flops / step_s / 1e12
    out = {
        "benchmark": "pretrain_step",
        "model": args.model, "batch": args.batch, "frames": args.frames, "slow_frames": args.slow_frames,
        "towers": "vision" if args.vision_only else "vision+text", "precision": precision,
        "compile": args.compile, "grad_ckpt": args.grad_ckpt,
        "steps": args.steps, "step_time_s_median": step_s, "step_time_s_min": min(times),
        "clips_per_s": args.batch / step_s,
        "model_tflop_per_step": flops / 1e12, "achieved_tflops": achieved,
        "peak_tflops": peak, "mfu": achieved / peak if peak else None,
        "loss": res.loss,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None,
        "machine": machine(device),
    }
    emit(out)
    return out


if __name__ == "__main__":
    main()
