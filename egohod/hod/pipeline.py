"""The per-batch HOD step: decode -> detect -> dynamics -> narrate, one record per clip.

:func:`process_batch` is the unit every executor runs (the local loop and the Ray Data actors).
A failure at any stage is caught for that clip alone and recorded as ``status="failed"`` with
the ``stage`` and a ``reason``; the other clips of the batch go on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from .clips import VideoSource, sample_times
from .config import component_kwargs
from .detectors import ClipFrames, Detector, create_detector
from .dynamics import DynamicsConfig, summarize_dynamics
from .narrators import NarrationRequest, Narrator, Validation, create_narrator
from .types import Clip, jsonable

STAGES = ("decode", "detect", "dynamics", "narrate")


@dataclass
class PipelineContext:
    detector: Detector
    narrator: Narrator
    video: VideoSource | None
    num_frames: int
    dynamics: DynamicsConfig
    keep_detections: bool = True

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "PipelineContext":
        dname, dkw = component_kwargs(cfg.detector)
        detector = create_detector(dname, **dkw)
        nname, nkw = component_kwargs(cfg.narrator)
        narrator = create_narrator(nname, validation=Validation(**OmegaConf.to_container(cfg.validation)), **nkw)
        video = None
        if detector.needs_pixels:
            if not cfg.videos:
                raise ValueError(f"detector {dname!r} reads frames: set videos=DIR (the video root)")
            video = VideoSource(cfg.videos, cfg.layout, cfg.chunk_seconds, cfg.ext, cfg.sampling.resize_short,
                                cfg.sampling.end_tolerance)
        s = cfg.sampling
        if s.num_frames < 1 or s.temporal_factor < 1:
            raise ValueError(f"sampling.num_frames and sampling.temporal_factor must be >= 1, got "
                             f"{s.num_frames} and {s.temporal_factor}")
        return cls(detector, narrator, video, int(s.num_frames * s.temporal_factor),
                   DynamicsConfig(**OmegaConf.to_container(cfg.dynamics)), bool(cfg.keep_detections))


def _reason(e: BaseException) -> str:
    msg = str(e).strip().replace("\n", " ")
    return f"{type(e).__name__}: {msg}"[:600]


def new_record(clip: Clip) -> dict:
    return {"key": clip.key, "row": clip.row, "video_id": clip.video_id, "start_second": clip.start_second,
            "end_second": clip.end_second, "narration": clip.narration, "dataset": clip.extra.get("dataset", ""),
            "uid": clip.extra.get("uid", ""), "texts": list(clip.extra.get("texts") or [clip.narration]),
            "status": "pending", "stage": None, "reason": None, "narrations": [],
            "detections": None, "dynamics": None, "timing": {}}


def _fail(rec: dict, stage: str, reason: str) -> None:
    rec.update(status="failed", stage=stage, reason=reason)


def process_batch(clips: list[Clip], ctx: PipelineContext) -> list[dict]:
    """Run all stages on a batch of clips; returns one record per clip, in order."""
    recs = [new_record(c) for c in clips]
    frames: dict[int, ClipFrames] = {}
    for i, c in enumerate(clips):  # ---- decode
        t0 = time.perf_counter()
        try:
            if ctx.video is not None:
                px, times = ctx.video.read(c, ctx.num_frames)
                frames[i] = ClipFrames(c.video_id, times, px)
            else:
                frames[i] = ClipFrames(c.video_id, sample_times(c.start_second, c.end_second, ctx.num_frames))
        except Exception as e:
            _fail(recs[i], "decode", _reason(e))
        recs[i]["timing"]["decode"] = time.perf_counter() - t0

    dets: dict[int, list] = {}
    live = sorted(frames)
    t0 = time.perf_counter()
    try:  # ---- detect (batched; on failure retry clip by clip to isolate the bad one)
        for i, d in zip(live, ctx.detector.detect_batch([frames[i] for i in live])):
            dets[i] = d
    except Exception:
        for i in live:
            try:
                dets[i] = ctx.detector.detect(frames[i])
            except Exception as e:
                _fail(recs[i], "detect", _reason(e))
    dt = (time.perf_counter() - t0) / max(1, len(live))
    for i in live:
        recs[i]["timing"]["detect"] = dt
    frames.clear()  # free the pixels

    narrate_idx = []
    for i in sorted(dets):  # ---- dynamics
        t0 = time.perf_counter()
        try:
            recs[i]["dynamics"] = summarize_dynamics(dets[i], ctx.dynamics)
            if ctx.keep_detections:
                recs[i]["detections"] = [f.to_dict() for f in dets[i]]
            narrate_idx.append(i)
        except Exception as e:
            _fail(recs[i], "dynamics", _reason(e))
        recs[i]["timing"]["dynamics"] = time.perf_counter() - t0
    narrate_records([recs[i] for i in narrate_idx], ctx.narrator)  # ---- narrate
    for r in recs:
        r["timing"] = {k: round(v, 5) for k, v in r["timing"].items()}
    return [jsonable(r) for r in recs]


def request_of(rec: dict) -> NarrationRequest:
    """The narration request of a record whose dynamics are known (also for stored records)."""
    texts = rec.get("texts") or [rec["narration"]]
    return NarrationRequest(rec["key"], rec["narration"], rec["dynamics"], rec["end_second"] - rec["start_second"],
                            list(texts))


_NARRATE_FIELDS = ("narration_attempts", "rejected_lines", "transport_error")


def narrate_records(recs: list[dict], narrator: Narrator) -> None:
    """The narrate stage, in place, on records whose ``dynamics`` are set (fresh ones from
    :func:`process_batch` or stored ones re-narrated by ``egohod hod renarrate``): sets ``status``,
    ``narrations`` or the failure, ``narration_attempts`` and the narrate timing."""
    for r in recs:
        r.update(status="pending", stage=None, reason=None, narrations=[])
        for k in _NARRATE_FIELDS:
            r.pop(k, None)
    reqs = [request_of(r) for r in recs]
    t0 = time.perf_counter()
    try:
        results = narrator.narrate_batch(reqs) if reqs else []
        if len(results) != len(reqs):
            raise RuntimeError(f"narrator returned {len(results)} results for {len(reqs)} requests")
    except Exception as e:
        results = None
        for r in recs:
            _fail(r, "narrate", _reason(e))
    dt = (time.perf_counter() - t0) / max(1, len(reqs))
    for k, rec in enumerate(recs):
        rec.setdefault("timing", {})["narrate"] = dt
        if results is None:
            continue
        res = results[k]
        rec["narration_attempts"] = res.attempts
        if res.rejected:
            rec["rejected_lines"] = res.rejected
        if res.ok:
            rec.update(status="ok", narrations=res.texts)
        else:
            _fail(rec, "narrate", res.error or "no valid narration")
            if res.transport_error:
                rec["transport_error"] = True
