"""Clip-loading throughput per CPU core: 4-frame clips from 15-second h264 chunks, as JSON.

    python bench/dataloader.py                                    # x264-default corpus (GOP 250), loader vs baseline
    python bench/dataloader.py --layout train                     # the layout `egohod.data.prepare` writes
    python bench/dataloader.py --layout train --slow-frames 16 --transform   # the full training sample
    python bench/dataloader.py --gop 30 --bframes 0 --tune fastdecode        # any other encoding
    python bench/dataloader.py --root /data/ego4d_chunks --csv hod.csv       # your own corpus

Every process loops over random clips (1-3 s windows at random times, so some span two chunks)
and reads them with :func:`egohod.data.video.read_chunked_clips` -- segment-based random
sampling, short side 320 -- optionally followed by the training transform (one
RandomResizedCrop to 224 + flip for all frames, CLIP normalisation). Nothing is cached between
clips except what a training worker would also keep (imported modules, one swscale context):
each clip opens its chunk files again, as on a corpus far larger than any cache.

Two methods run on the same corpus and windows, one after the other in the same processes:

* ``loader``: the current code (PyAV random access, ``backend="pyav"``; uint8 transform);
* ``baseline``: the previous method (decord ``VideoReader`` + ``get_batch`` per file, PyAV probe
  cached per file; the float32 transform that converted whole frames before cropping).

Each process is pinned to one thread. Reported per method and process count: clips/s (wall),
and ``clips_per_cpu_second`` = clips / CPU-seconds of the processes -- the per-core rate, robust
to other load on a shared machine (load average in the output).

Generated corpora: 320x568 video at 30 fps with smooth camera motion over a texture
(``--content``): ``noise`` (default; 4x4-pixel random blocks -- nearly incompressible keyframes
of ~90 KB, so a harsh case for short keyframe intervals, and pure translation, an easy case for
long ones) or ``natural`` (a multi-scale texture with a 1/f-like spectrum, as natural images
have, seen through a slowly zooming and panning camera, predicted frames
with real residuals). Encodings (``--layout``):

* ``x264-default``: what ``ffmpeg -c:v libx264`` writes without options -- keyframe every 250
  frames, 3 B-frames with pyramid (some B-frames are references), no tune;
* ``train``: :data:`egohod.data.prepare.TRAIN_LAYOUT` -- short keyframe interval, non-reference
  B-frames, ``fastdecode``.

``--gop/--bframes/--b-pyramid/--tune/--crf`` override the preset.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

from egohod.measure import emit, machine

LAYOUTS = {
    "x264-default": {"gop": 250, "bframes": 3, "b_pyramid": "normal", "tune": "", "crf": 23},
}


def layout_preset(name: str) -> dict:
    if name == "train":
        from egohod.data.prepare import TRAIN_LAYOUT

        return {"gop": TRAIN_LAYOUT.gop, "bframes": TRAIN_LAYOUT.bframes, "b_pyramid": TRAIN_LAYOUT.b_pyramid,
                "tune": TRAIN_LAYOUT.tune, "crf": TRAIN_LAYOUT.crf}
    return dict(LAYOUTS[name])


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="chunked corpus {root}/{video_id}/{chunk:04d}.mp4 (default: generate one)")
    p.add_argument("--csv", default=None, help="HOD CSV of the corpus (default: random windows over the generated videos)")
    p.add_argument("--workdir", default="/tmp/egohod_bench_loader", help="where the generated corpus is cached")
    p.add_argument("--layout", default="x264-default", choices=["x264-default", "train"])
    p.add_argument("--gop", type=int, default=None)
    p.add_argument("--bframes", type=int, default=None)
    p.add_argument("--b-pyramid", default=None, choices=["none", "strict", "normal"])
    p.add_argument("--tune", default=None, help="x264 tune, e.g. fastdecode ('' for none)")
    p.add_argument("--crf", type=int, default=None)
    p.add_argument("--content", default="noise", choices=["noise", "natural"])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--video-seconds", type=float, default=30.0)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--width", type=int, default=568)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--slow-frames", type=int, default=0)
    p.add_argument("--resize-short", type=int, default=320)
    p.add_argument("--transform", action="store_true", help="also apply the training transform (224 px)")
    p.add_argument("--methods", nargs="+", default=["loader", "baseline"], choices=["loader", "baseline"])
    p.add_argument("--procs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time per method and process count")
    args = p.parse_args(argv)
    enc = layout_preset(args.layout)
    for k in enc:
        if getattr(args, k) is not None:
            enc[k] = getattr(args, k)
    args.encoding = enc
    return args


def encoding_name(enc: dict) -> str:
    return (f"gop{enc['gop']}_bf{enc['bframes']}{'_' + enc['b_pyramid'] if enc['bframes'] else ''}"
            f"{'_' + enc['tune'] if enc['tune'] else ''}_crf{enc['crf']}")


def make_corpus(args) -> tuple[Path, list[tuple[str, float]]]:
    """Textured moving video in 15-s chunks (cached); returns root and (video_id, duration) pairs."""
    from egohod.data.video import chunk_path, write_video

    enc = args.encoding
    content = "" if args.content == "noise" else f"_{args.content}"
    root = Path(args.workdir) / f"{args.height}x{args.width}_{args.fps}fps{content}_{encoding_name(enc)}"
    per_chunk = 15 * args.fps
    total = int(args.video_seconds * args.fps)
    rng = np.random.default_rng(0)
    videos = []
    for v in range(args.videos):
        vid = f"bench{v:03d}"
        videos.append((vid, args.video_seconds))
        if (root / vid / "done").exists():
            continue
        if args.content == "noise":
            big = rng.integers(0, 256, (args.height // 4 + 64, args.width // 4 + 64, 3), dtype=np.uint8)
            big = big.repeat(4, 0).repeat(4, 1)  # 4x4-pixel texture
        else:
            big = natural_texture(args.height + 256, args.width + 256, rng)
        for c, s in enumerate(range(0, total, per_chunk)):
            n = min(per_chunk, total - s)
            frames = np.empty((n, args.height, args.width, 3), np.uint8)
            for k in range(n):
                t = s + k
                dy, dx = int(100 + 90 * np.sin(t / 40)), int(100 + 90 * np.cos(t / 55))  # camera motion
                if args.content == "noise":
                    frames[k] = big[dy:dy + args.height, dx:dx + args.width]
                else:
                    frames[k] = zoomed_view(big, dy, dx, args.height, args.width, 1.15 + 0.15 * np.sin(t / 23))
            write_video(chunk_path(root, vid, c), frames, args.fps, gop_size=enc["gop"], crf=enc["crf"],
                        tune=enc["tune"] or None, bframes=enc["bframes"], b_pyramid=enc["b_pyramid"])
        (root / vid / "done").write_text("ok")
    return root, videos


def natural_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [h, w, 3]: noise with equal amplitude per octave (a 1/f amplitude spectrum, as natural
    images have) plus sharp-edged objects (ellipses of flat colour)."""
    import torch
    import torch.nn.functional as F

    acc = torch.zeros(1, 3, h, w)
    for octave in range(0, 7):
        s = 2 ** octave
        small = torch.from_numpy(rng.standard_normal((1, 3, h // s + 2, w // s + 2)).astype(np.float32))
        small[:, 1:] = 0.4 * small[:, 1:] + 0.6 * small[:, :1]  # correlated colour channels
        acc += F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False) if s > 1 else \
            0.3 * small[..., :h, :w]  # less pixel-level grain: cameras and encoders remove most of it
    acc = (acc - acc.mean()) / acc.std()
    img = (128 + 40 * acc)[0].permute(1, 2, 0).numpy()
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(h * w / 4000)):
        cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, 40), rng.uniform(5, 40)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        img[inside] = 0.3 * img[inside] + 0.7 * rng.uniform(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def zoomed_view(big: np.ndarray, top: int, left: int, h: int, w: int, zoom: float) -> np.ndarray:
    """The ``h x w`` window at (top, left) of ``big`` seen with magnification ``zoom`` (bilinear)."""
    import torch
    import torch.nn.functional as F

    ch, cw = int(round(h / zoom)), int(round(w / zoom))
    cy, cx = top + h // 2, left + w // 2
    crop = torch.from_numpy(big[cy - ch // 2: cy - ch // 2 + ch, cx - cw // 2: cx - cw // 2 + cw])
    out = F.interpolate(crop.permute(2, 0, 1)[None].float(), size=(h, w), mode="bilinear", align_corners=False)
    return out[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def legacy_train_transform(frames: np.ndarray, short_side: int, size: int, generator):
    """The previous training transform, kept here as the baseline: whole frames to float32, resize
    the short side (bicubic, antialiased), RandomResizedCrop on the float frames, resize the crop."""
    import torch
    import torch.nn.functional as F

    from egohod.data.transforms import normalize, random_resized_crop_params, resize_short_side
    from egohod.models.spec import CLIP_MEAN, CLIP_STD

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    x = resize_short_side(x, short_side)
    top, left, ch, cw = random_resized_crop_params(x.shape[-2], x.shape[-1], (0.5, 1.0), generator=generator)
    x = F.interpolate(x[..., top: top + ch, left: left + cw], size=(size, size), mode="bicubic",
                      align_corners=False, antialias=True)
    if float(torch.rand(1, generator=generator)) < 0.5:
        x = x.flip(-1)
    return normalize(x, CLIP_MEAN, CLIP_STD).permute(1, 0, 2, 3).contiguous()


def _worker(args, method, root, windows, seconds, q):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from egohod.data.datasets import concat_clips
    from egohod.data.transforms import VideoTransform
    from egohod.data.video import read_chunked_clips
    from egohod.models.spec import CLIP_MEAN, CLIP_STD

    backend = "pyav" if method == "loader" else "decord"
    tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, train=True, train_short_side=args.resize_short)
    rng = np.random.default_rng(os.getpid())
    counts = [args.frames] + ([args.slow_frames] if args.slow_frames else [])
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        vid, start, end = windows[int(rng.integers(len(windows)))]
        clips = read_chunked_clips(root, vid, start, end, counts, 15.0, "random", args.resize_short, rng, backend, 1)
        if args.transform:
            g = torch.Generator().manual_seed(n)
            if method == "loader":
                tf(concat_clips(clips), generator=g)
            else:
                legacy_train_transform(np.concatenate(clips), args.resize_short, 224, g)
        n += 1
    q.put((n, time.perf_counter() - t0, time.process_time() - c0))


def windows_from(args, root, videos) -> list[tuple[str, float, float]]:
    if args.csv:
        from egohod.data.metadata import read_hod_csv

        return [(r.video_id, r.start, r.end) for r in read_hod_csv(args.csv)]
    rng = np.random.default_rng(1)
    out = []
    for vid, dur in videos:
        for _ in range(200):
            length = float(rng.uniform(1.0, 3.0))
            start = float(rng.uniform(0, dur - length))
            out.append((vid, start, start + length))
    return out


def measure(args, method, procs, root, windows) -> dict:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ps = [ctx.Process(target=_worker, args=(args, method, root, windows, args.seconds, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = [q.get() for _ in ps]
    for p in ps:
        p.join()
    clips, cpu = sum(n for n, _, _ in got), sum(c for _, _, c in got)
    total = sum(n / dt for n, dt, _ in got)
    return {"method": method, "processes": procs, "clips": clips, "clips_per_s": round(total, 2),
            "clips_per_s_per_process": round(total / procs, 2), "clips_per_cpu_second": round(clips / cpu, 2),
            "ms_cpu_per_clip": round(1000 * cpu / clips, 2)}


def corpus_stats(root: Path) -> dict:
    files = sorted(root.glob("*/*.mp4"))
    if not files:
        return {}
    from egohod.data.video import probe_video

    info = probe_video(files[0])
    mb = sum(f.stat().st_size for f in files) / 1e6
    secs = sum(probe_video(f).duration for f in files)
    return {"files": len(files), "size": f"{info.width}x{info.height}", "fps": info.fps,
            "mb_per_hour": round(mb / secs * 3600, 1)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.root:
        root = Path(args.root)
        if not args.csv:
            raise SystemExit("--root needs --csv (the clips to read)")
        videos = []
    else:
        t = time.perf_counter()
        root, videos = make_corpus(args)
        print(f"corpus ready in {time.perf_counter() - t:.1f}s: {root}", file=sys.stderr)
    windows = windows_from(args, root, videos)
    load_before = os.getloadavg()[0]
    results = [measure(args, m, procs, root, windows) for procs in args.procs for m in args.methods]
    enc = dict(args.encoding)
    if not enc["bframes"]:
        enc.pop("b_pyramid")  # meaningless without B-frames
    out = {
        "benchmark": "dataloader",
        "what": f"{args.frames}{'+' + str(args.slow_frames) if args.slow_frames else ''}-frame clips, random segment "
                f"sampling, 1-3 s windows over 15-s chunks, short side {args.resize_short}"
                + (", + RandomResizedCrop 224 + flip + normalise" if args.transform else ""),
        "corpus": str(root),
        "layout": ("user corpus" if not videos else
                   {"preset": args.layout, "content": args.content,
                    "h264": f"{args.height}x{args.width} {args.fps} fps", **enc,
                    **corpus_stats(root)}),
        "methods": {"loader": "PyAV random access (egohod.data.video.PyAVReader), uint8 transform",
                    "baseline": "previous method: decord VideoReader.get_batch per file, float32 transform"},
        "machine": machine(extra={"load_avg_1min_before": round(load_before, 2),
                                  "load_avg_1min_after": round(os.getloadavg()[0], 2)}),
        "results": results,
    }
    emit(out)
    return out


if __name__ == "__main__":
    main()
