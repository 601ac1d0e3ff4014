"""Clip-loading throughput per CPU core: 4-frame clips from 15-second h264 chunks, as JSON.

    python bench/dataloader.py                                   # generated 320p corpus, 1 and N processes
    python bench/dataloader.py --procs 1 2 4 8 16 --seconds 20
    python bench/dataloader.py --root /data/ego4d_chunks --csv hod.csv    # your own corpus
    python bench/dataloader.py --slow-frames 16 --transform              # the full training sample

Every process loops over random clips (1-3 s windows at random times, so some span two chunks)
and reads them with :func:`egohod.data.video.read_chunked_clips` -- segment-based random
sampling, decord with resize at decode time -- optionally followed by the training transform
(RandomResizedCrop to 224 + normalisation). Each process is pinned to one thread; the result is
clips/s per process and in total (wall clock), and clips per CPU-second of the processes
(``clips_per_cpu_second``: the per-core rate, robust to other load on a shared machine).

The generated corpus is textured, moving 320p video at 30 fps encoded with libx264 and a
keyframe interval of ``--gop`` frames (250 = ffmpeg's default, what re-encoded Ego4D chunks
have); pass ``--gop 30`` to see what shorter GOPs buy.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="chunked corpus {root}/{video_id}/{chunk:04d}.mp4 (default: generate one)")
    p.add_argument("--csv", default=None, help="HOD CSV of the corpus (default: random windows over the generated videos)")
    p.add_argument("--workdir", default="/tmp/egohod_bench_loader", help="where the generated corpus is cached")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--video-seconds", type=float, default=30.0)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--width", type=int, default=568)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--gop", type=int, default=250)
    p.add_argument("--tune", default="", help="x264 tune of the generated corpus, e.g. fastdecode")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--slow-frames", type=int, default=0)
    p.add_argument("--resize-short", type=int, default=320)
    p.add_argument("--transform", action="store_true", help="also apply the training transform (224 px)")
    p.add_argument("--backend", default="auto", choices=["auto", "decord", "pyav"])
    p.add_argument("--procs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time per process count")
    return p.parse_args(argv)


def make_corpus(args) -> tuple[Path, list[tuple[str, float]]]:
    """Textured moving video in 15-s chunks (cached); returns root and (video_id, duration) pairs."""
    from egohod.data.video import chunk_path, write_video

    root = Path(args.workdir) / f"{args.height}x{args.width}_{args.fps}fps_gop{args.gop}{'_' + args.tune if args.tune else ''}"
    per_chunk = 15 * args.fps
    total = int(args.video_seconds * args.fps)
    rng = np.random.default_rng(0)
    videos = []
    for v in range(args.videos):
        vid = f"bench{v:03d}"
        videos.append((vid, args.video_seconds))
        if (root / vid / "done").exists():
            continue
        big = rng.integers(0, 256, (args.height // 4 + 64, args.width // 4 + 64, 3), dtype=np.uint8)
        big = big.repeat(4, 0).repeat(4, 1)  # 4x4-pixel texture: compresses like real footage, not like flat colour
        for c, s in enumerate(range(0, total, per_chunk)):
            n = min(per_chunk, total - s)
            frames = np.empty((n, args.height, args.width, 3), np.uint8)
            for k in range(n):
                t = s + k
                dy, dx = int(100 + 90 * np.sin(t / 40)), int(100 + 90 * np.cos(t / 55))  # camera motion
                frames[k] = big[dy:dy + args.height, dx:dx + args.width]
            write_video(chunk_path(root, vid, c), frames, args.fps, gop_size=args.gop, tune=args.tune or None)
        (root / vid / "done").write_text("ok")
    return root, videos


def _worker(args, root, windows, seconds, q):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from egohod.data.video import read_chunked_clips

    tf = None
    if args.transform:
        from egohod.data.transforms import VideoTransform
        from egohod.models.spec import CLIP_MEAN, CLIP_STD

        tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, train=True, train_short_side=args.resize_short)
    rng = np.random.default_rng(os.getpid())
    counts = [args.frames] + ([args.slow_frames] if args.slow_frames else [])
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        vid, start, end = windows[int(rng.integers(len(windows)))]
        clips = read_chunked_clips(root, vid, start, end, counts, 15.0, "random", args.resize_short, rng,
                                   args.backend, 1)
        if tf is not None:
            tf(np.concatenate(clips), generator=torch.Generator().manual_seed(n))
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
    ctx = mp.get_context("fork")
    results = []
    for procs in args.procs:
        q = ctx.Queue()
        ps = [ctx.Process(target=_worker, args=(args, root, windows, args.seconds, q)) for _ in range(procs)]
        for p in ps:
            p.start()
        got = [q.get() for _ in ps]
        for p in ps:
            p.join()
        total = sum(n / dt for n, dt, _ in got)
        clips, cpu = sum(n for n, _, _ in got), sum(c for _, _, c in got)
        results.append({"processes": procs, "clips": clips, "clips_per_s": total,
                        "clips_per_s_per_process": total / procs,
                        "clips_per_cpu_second": clips / cpu, "ms_cpu_per_clip": 1000 * cpu / clips})
    out = {
        "benchmark": "dataloader",
        "what": f"{args.frames}{'+' + str(args.slow_frames) if args.slow_frames else ''}-frame clips, random segment "
                f"sampling, 1-3 s windows over 15-s chunks, decode resize to short side {args.resize_short}"
                + (", + RandomResizedCrop 224 + normalise" if args.transform else ""),
        "corpus": str(root), "video": (f"{args.height}x{args.width} {args.fps} fps h264 gop {args.gop}"
                  f"{' tune ' + args.tune if args.tune else ''}") if videos else "user",
        "backend": args.backend, "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0], "results": results,
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
