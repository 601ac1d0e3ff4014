"""Encoder throughput: clips/s of an EgoVideo variant's forward (or forward + backward), as JSON.

    python bench/encoder_throughput.py --variant egovideo_b --batch 128 --dtype bf16 --compile   # GPU
    python bench/encoder_throughput.py --variant egovideo_b --batch 2 --device cpu --dtype fp32  # CPU
    python bench/encoder_throughput.py --variant egovideo_b --batch 128 --backward --text        # training-like

What is timed (random, already-normalised clips and random tokens; no data loading):

* default: ``encode_video`` under ``torch.no_grad`` (the frozen-encoder cost);
* ``--backward``: ``encode_video`` (+ ``encode_text`` with ``--text``) and a symmetric InfoNCE
  loss, then ``loss.backward()`` (no optimizer step), all parameters trainable except
  ``logit_scale`` — the setting of the upstream anchor (520 clips/s for B, batch 128, fp16, H200);
* ``--dual``: the co-training forward ``encode_video_dual`` with a ``4 x frames`` slow clip.

``--dtype bf16|fp16`` runs under ``torch.autocast`` (mixed precision, fp32 weights), as training
does. With ``--compile`` the same process first times the eager model (the baseline), then the
``torch.compile``d one, and reports both and the speed-up. FLOPs per iteration are counted once
with ``torch.utils.flop_counter.FlopCounterMode``; achieved TFLOP/s and (on CUDA, with
``--peak-tflops``, default 989 = H100/H200 dense bf16) utilisation are reported.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from egohod.device import resolve_device
from egohod.measure import emit, machine

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="egovideo_b")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--frames", type=int, default=None, help="default: the variant's clip length")
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compile", action="store_true", help="also time torch.compile (eager is the baseline)")
    p.add_argument("--backward", action="store_true", help="forward + InfoNCE + backward")
    p.add_argument("--text", action="store_true", help="include the text tower")
    p.add_argument("--dual", action="store_true", help="co-training dual path (needs an adapter variant)")
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def make_inputs(args, model, device):
    spec = model.input_spec
    t = args.frames or spec.num_frames
    g = torch.Generator().manual_seed(0)
    video = torch.randn(args.batch, 3, t, spec.image_size, spec.image_size, generator=g).to(device)
    slow = torch.randn(args.batch, 3, 4 * t, spec.image_size, spec.image_size, generator=g).to(device) if args.dual else None
    ctx = getattr(model.textual, "context_length", 77)
    tokens = torch.randint(1, 1000, (args.batch, ctx), generator=g)
    tokens[:, 0], tokens[:, -1] = 999, 1000  # the EOT (highest id) is pooled
    return video, slow, tokens.to(device)


def model_fns(model, compiled: bool) -> dict:
    """The model methods the step calls (``torch.compile`` wraps each one: compiling the module
    would only compile ``forward``)."""
    fns = {"video": model.encode_video, "dual": getattr(model, "encode_video_dual", None),
           "text": model.encode_text}
    if compiled:
        fns = {k: (torch.compile(f) if f is not None else None) for k, f in fns.items()}
    return fns


def make_step(model, args, video, slow, tokens, device):
    autocast = (torch.autocast(device.type, dtype=DTYPES[args.dtype]) if args.dtype != "fp32"
                else contextlib.nullcontext())

    def encode(fns):
        return fns["dual"](video, slow) if args.dual else fns["video"](video)

    def forward_only(fns):
        with torch.no_grad(), autocast:
            return encode(fns)

    def train(fns):
        with autocast:
            v = F.normalize(encode(fns), dim=-1)
            if args.text:
                t = F.normalize(fns["text"](tokens), dim=-1)
                logits = model.logit_scale.exp() * v @ t.t()
                labels = torch.arange(v.shape[0], device=v.device)
                loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
            else:
                loss = v.float().square().mean()
        loss.backward()
        for p in model.parameters():
            p.grad = None
        return loss

    return train if args.backward else forward_only


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step, fns, args, device) -> dict:
    for _ in range(args.warmup):
        step(fns)
    sync(device)
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step(fns)
        sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"clips_per_s": round(args.batch / med, 2), "clips_per_s_best": round(args.batch / min(times), 2),
            "ms_per_iter_median": round(med * 1e3, 2),
            "ms_per_iter_min": round(min(times) * 1e3, 2), "iters": args.iters}


def count_flops(step, fns) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step(fns)
    return float(fc.get_total_flops())


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    import egohod

    model = egohod.create_model(args.variant, num_frames=args.frames, **({"adapter": True} if args.dual else {}))
    model = model.to(device)
    if args.backward:
        model.set_trainable("cotrain" if args.dual else "contrastive")
        if not args.text:
            for p in model.textual.parameters():
                p.requires_grad_(False)
    else:
        model.eval()
    if args.grad_ckpt:
        model.set_grad_checkpointing(True)
    video, slow, tokens = make_inputs(args, model, device)
    step = make_step(model, args, video, slow, tokens, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    flops = count_flops(step, model_fns(model, compiled=False))
    result = {"variant": args.variant, "batch": args.batch, "frames": video.shape[2], "image_size": video.shape[-1],
              "dtype": args.dtype, "device": str(device), "mode": ("forward+backward" if args.backward else "forward"),
              "text": args.text, "dual": args.dual, "grad_ckpt": args.grad_ckpt,
              "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
              "gflops_per_iter": round(flops / 1e9, 4), "machine": machine(device)}
    runs = {"eager": time_step(step, model_fns(model, compiled=False), args, device)}
    if args.compile:
        runs["compile"] = time_step(step, model_fns(model, compiled=True), args, device)
        runs["compile_speedup"] = round(runs["compile"]["clips_per_s"] / runs["eager"]["clips_per_s"], 3)
    peak = args.peak_tflops or (989.0 if device.type == "cuda" else None)
    for name, r in runs.items():
        if isinstance(r, dict):
            r["tflops_per_s"] = round(flops / (r["ms_per_iter_median"] / 1e3) / 1e12, 3)
            if peak:
                r["utilisation_of_peak"] = round(r["tflops_per_s"] / peak, 4)
    result["runs"] = runs
    if peak:
        result["peak_tflops"] = peak
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    emit(result)
    return result


if __name__ == "__main__":
    main()
