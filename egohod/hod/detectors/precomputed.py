"""``precomputed``: detections users already have, looked up at the sampled frame times.

Two formats (``detector.format``):

* ``ek100`` -- the public EPIC-KITCHENS-100 hand-object detections: ``{root}/{video_id}.pkl`` or
  ``{root}/{participant}/{video_id}.pkl`` (see :mod:`.ek100_format`). Frame numbers are 1-based
  at the video's frame rate (``detector.fps``, or per video from ``detector.video_info``, a CSV
  with ``video_id`` and ``fps`` columns such as ``EPIC_100_video_info.csv``). Offsets are
  converted back to the 100DOH ``(mag, dx, dy)`` convention for a ``frame_width`` x
  ``frame_height`` frame (456 x 256, the size the public detections were computed at).
* ``100doh`` -- per-frame arrays as the 100DOH demo returns them, in pixels:
  ``hand_dets`` / ``obj_dets`` ``[N, 10]`` = ``x1, y1, x2, y2, score, state, mag, dx, dy, side``.
  One file per video: ``{root}/{video_id}.npz`` with scalars ``width``, ``height``, ``fps`` and
  arrays ``frame_{n}_hand`` / ``frame_{n}_obj`` (0-based frame ``n``; absent = no detections
  were stored for that frame, an array with 0 rows = nothing detected), or
  ``{root}/{video_id}.pkl`` holding ``{"width", "height", "fps", "frames": {n: {"hand": arr|None,
  "obj": arr|None}}}``.

A sampled time maps to the nearest frame; when no frame within ``max_frame_gap`` frames has
detections the clip fails with a reason naming the file and the frames it covers (this is how a
clip beyond the end of the detections is reported). Pickle files are read by
:func:`egohod.safe_load.load_pickle` (bytes, numbers, dicts, lists and numpy arrays only);
``detector.trust_pickle=true`` lifts that restriction for files you trust.
"""
from __future__ import annotations

import csv
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ...config import transport
from ...safe_load import load_pickle
from ..types import CONTACT_STATES, DetectionFormatError, FrameDetections, HandDetection, ObjectDetection, offset_from_vector
from .base import ClipFrames, Detector, register_detector
from .ek100_format import decode_frame


@dataclass
class Options:
    root: Optional[str] = None  # folder of per-video detection files
    format: str = "ek100"  # ek100 | 100doh
    fps: Optional[float] = None  # frame rate of the detections (ek100: or video_info)
    video_info: Optional[str] = None  # EPIC_100_video_info.csv: fps per video
    frame_width: int = 456  # the frame size EK-100's normalised boxes refer to
    frame_height: int = 256
    max_frame_gap: int = 2  # nearest detected frame at most this many frames from a sampled time
    cache_videos: int = transport(4)  # per-video detection files kept in memory
    trust_pickle: bool = transport(False)  # unpickle .pkl detections without egohod's allowlist (trusted files only)


@register_detector("precomputed", options=Options)
class PrecomputedDetector(Detector):
    """Detections read from files (EK-100 public format or 100DOH per-frame arrays)."""

    name = "precomputed"
    needs_pixels = False

    def __init__(self, options: Options = Options()):
        if not options.root:
            raise ValueError("detector precomputed needs detector.root=DIR (folder of per-video detection files)")
        if options.format not in ("ek100", "100doh"):
            raise ValueError(f"detector.format must be 'ek100' or '100doh', got {options.format!r}")
        self.root = Path(options.root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"detector.root {self.root} is not a directory")
        self.format = options.format
        self.fps = None if options.fps is None else float(options.fps)
        self.video_fps = self._read_video_info(options.video_info) if options.video_info else {}
        self.frame_size = (int(options.frame_width), int(options.frame_height))
        self.max_frame_gap = int(options.max_frame_gap)
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = int(options.cache_videos)
        self.trust_pickle = bool(options.trust_pickle)

    @staticmethod
    def _read_video_info(path: str) -> dict[str, float]:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "video_id" not in rows[0] or "fps" not in rows[0]:
            raise DetectionFormatError(f"{path}: video_info CSV needs 'video_id' and 'fps' columns")
        return {r["video_id"]: float(r["fps"]) for r in rows}

    # ------------------------------------------------------------------ loading
    def _find(self, video_id: str, exts: tuple[str, ...]) -> Path:
        cands = [self.root / f"{video_id}{e}" for e in exts]
        cands += [self.root / video_id.split("_")[0] / f"{video_id}{e}" for e in exts]
        for p in cands:
            if p.is_file():
                return p
        raise FileNotFoundError(f"no detections for video {video_id!r}: tried {', '.join(str(c) for c in cands)}")

    def _video(self, video_id: str) -> dict:
        if video_id in self._cache:
            self._cache.move_to_end(video_id)
            return self._cache[video_id]
        v = self._load_ek100(video_id) if self.format == "ek100" else self._load_100doh(video_id)
        self._cache[video_id] = v
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return v

    def _load_ek100(self, video_id: str) -> dict:
        path = self._find(video_id, (".pkl",))
        fps = self.video_fps.get(video_id, self.fps)
        if fps is None:
            raise ValueError(f"ek100 detections need the frame rate of {video_id}: set detector.fps or detector.video_info")
        items = load_pickle(path, trust_pickle=self.trust_pickle, what="ek100 detections file")
        if not isinstance(items, (list, tuple)):
            raise DetectionFormatError(f"{path}: expected a pickled list of serialized protobuf frames, got {type(items).__name__}")
        frames = {}
        for k, b in enumerate(items):
            if not isinstance(b, (bytes, bytearray)):
                raise DetectionFormatError(f"{path}: item {k} is {type(b).__name__}, expected serialized protobuf bytes")
            try:
                d = decode_frame(bytes(b))
            except DetectionFormatError as e:
                raise DetectionFormatError(f"{path}: item {k}: {e}") from None
            frames[int(d["frame_number"])] = d
        return {"path": path, "fps": fps, "base": 1, "frames": frames, "size": self.frame_size}

    def _load_100doh(self, video_id: str) -> dict:
        path = self._find(video_id, (".npz", ".pkl"))
        frames: dict[int, dict] = {}
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                try:
                    meta = {k: float(z[k]) for k in ("width", "height", "fps")}
                except KeyError as e:
                    raise DetectionFormatError(f"{path}: missing scalar {e} (need width, height, fps)") from None
                for name in z.files:
                    if name.startswith("frame_"):
                        try:
                            n, kind = name[len("frame_"):].rsplit("_", 1)
                            frames.setdefault(int(n), {})[kind] = z[name]
                        except ValueError:
                            raise DetectionFormatError(f"{path}: array name {name!r} is not frame_<n>_hand/obj") from None
        else:
            obj = load_pickle(path, trust_pickle=self.trust_pickle, what="100doh detections file")
            if not isinstance(obj, dict) or "frames" not in obj:
                raise DetectionFormatError(f"{path}: expected a dict with width, height, fps and frames")
            try:
                meta = {k: float(obj[k]) for k in ("width", "height", "fps")}
            except KeyError as e:
                raise DetectionFormatError(f"{path}: missing {e} (need width, height, fps)") from None
            frames = {int(n): dict(v or {}) for n, v in obj["frames"].items()}
        return {"path": path, "fps": meta["fps"], "base": 0, "frames": frames,
                "size": (int(meta["width"]), int(meta["height"]))}

    # ------------------------------------------------------------------ conversion
    def _nearest(self, v: dict, t: float, video_id: str) -> tuple[int, dict]:
        n = int(round(t * v["fps"])) + v["base"]
        for gap in range(self.max_frame_gap + 1):
            for m in (n - gap, n + gap):
                if m in v["frames"]:
                    return m, v["frames"][m]
        have = sorted(v["frames"])
        span = f"frames {have[0]}..{have[-1]}" if have else "no frames"
        raise LookupError(f"{v['path']}: no detections within {self.max_frame_gap} frames of frame {n} "
                          f"(t={t:.3f}s at {v['fps']:g} fps) for video {video_id}; the file covers {span}")

    @staticmethod
    def _ek_frame(d: dict, t: float, size: tuple[int, int], where: str) -> FrameDetections:
        W, H = size
        hands, objs = [], []
        try:
            for h in d["hands"]:
                if not 0 <= h["state"] < len(CONTACT_STATES) or h["side"] not in (0, 1):
                    raise DetectionFormatError(f"hand state {h['state']} / side {h['side']} out of range")
                off = offset_from_vector(h["offset"][0] * W, h["offset"][1] * H)
                hands.append(HandDetection(h["bbox"], h["score"], CONTACT_STATES[h["state"]],
                                           ("left", "right")[h["side"]], off))
            objs = [ObjectDetection(o["bbox"], o["score"]) for o in d["objects"]]
        except DetectionFormatError as e:
            raise DetectionFormatError(f"{where}: {e}") from None
        return FrameDetections(t, W, H, hands, objs)

    @staticmethod
    def _doh_frame(d: dict, t: float, size: tuple[int, int], where: str) -> FrameDetections:
        W, H = size
        hands, objs = [], []
        for kind in ("hand", "obj"):
            a = d.get(kind)
            if a is None:
                continue
            a = np.asarray(a, dtype=np.float64)
            if a.size == 0:
                continue
            if a.ndim != 2 or a.shape[1] != 10:
                raise DetectionFormatError(f"{where}: {kind} detections must be [N, 10] "
                                           f"(x1, y1, x2, y2, score, state, mag, dx, dy, side), got {a.shape}")
            if not np.isfinite(a).all():
                raise DetectionFormatError(f"{where}: {kind} detections contain NaN/inf")
            for row in a:
                box = (row[0] / W, row[1] / H, row[2] / W, row[3] / H)
                try:
                    if kind == "obj":
                        objs.append(ObjectDetection(box, row[4]))
                        continue
                    state, side = int(round(row[5])), int(round(row[9]))
                    if not 0 <= state < len(CONTACT_STATES) or side not in (0, 1):
                        raise DetectionFormatError(f"state {row[5]} / side {row[9]} out of range (0..4 / 0..1)")
                    hands.append(HandDetection(box, row[4], CONTACT_STATES[state], ("left", "right")[side],
                                               (row[6], row[7], row[8])))
                except DetectionFormatError as e:
                    raise DetectionFormatError(f"{where}: {kind} row {row.round(3).tolist()}: {e}") from None
        return FrameDetections(t, W, H, hands, objs)

    def detect(self, clip: ClipFrames) -> list[FrameDetections]:
        v = self._video(clip.video_id)
        out = []
        for t in clip.times:
            n, d = self._nearest(v, float(t), clip.video_id)
            where = f"{v['path']} frame {n}"
            conv = self._ek_frame if self.format == "ek100" else self._doh_frame
            out.append(conv(d, float(t), v["size"], where))
        return out

