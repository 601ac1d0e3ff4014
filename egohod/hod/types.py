"""Data types shared by the HOD stages: clips, per-frame hand-object detections (100DOH fields)
and per-clip records.

Boxes are ``(x1, y1, x2, y2)`` normalised to ``[0, 1]`` by the frame width and height. Hand
offsets keep the raw 100DOH convention ``(mag, dx, dy)``: the detector's unit direction scaled by
0.1 and a magnitude such that the linked object centre is expected at
``hand_centre_px + mag * 10000 * (dx, dy)`` in pixels of the frame the detector saw
(``FrameDetections.width/height``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# 100DOH contact states (index = class id of the contact head) and hand sides.
CONTACT_STATES = ("N", "S", "O", "P", "F")
CONTACT_NAMES = {
    "N": "no contact",
    "S": "self contact",
    "O": "contact with another person",
    "P": "contact with a portable object",
    "F": "contact with a stationary object",
}
HAND_SIDES = ("left", "right")
OFFSET_SCALE = 10000.0  # hand_centre + mag * OFFSET_SCALE * (dx, dy), in pixels


class DetectionFormatError(ValueError):
    """A detection file or array does not follow the expected format."""


@dataclass(frozen=True)
class Clip:
    """One row of the input clip list. ``key`` is unique within a run and stable across reruns."""

    key: str
    row: int
    video_id: str
    start_second: float
    end_second: float
    narration: str
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Clip":
        return cls(**d)


def _box(values, what: str) -> tuple[float, float, float, float]:
    try:
        b = tuple(float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise DetectionFormatError(f"{what}: box {values!r} is not 4 numbers") from e
    if len(b) != 4 or not all(np.isfinite(b)):
        raise DetectionFormatError(f"{what}: box {values!r} must be 4 finite numbers (x1, y1, x2, y2)")
    if b[2] < b[0] or b[3] < b[1]:
        raise DetectionFormatError(f"{what}: box {b} has x2 < x1 or y2 < y1")
    if min(b) < -1e-3 or max(b) > 1 + 1e-3:
        raise DetectionFormatError(f"{what}: box {b} is not normalised to [0, 1]")
    return tuple(float(min(max(v, 0.0), 1.0)) for v in b)  # type: ignore[return-value]


@dataclass
class HandDetection:
    box: tuple[float, float, float, float]
    score: float
    state: str  # one of CONTACT_STATES
    side: str  # "left" | "right"
    offset: tuple[float, float, float]  # (mag, dx, dy), raw 100DOH convention

    def __post_init__(self) -> None:
        self.box = _box(self.box, "hand")
        if self.state not in CONTACT_STATES:
            raise DetectionFormatError(f"hand: contact state {self.state!r} not in {CONTACT_STATES}")
        if self.side not in HAND_SIDES:
            raise DetectionFormatError(f"hand: side {self.side!r} not in {HAND_SIDES}")
        if len(self.offset) != 3 or not all(np.isfinite(self.offset)):
            raise DetectionFormatError(f"hand: offset {self.offset!r} must be 3 finite numbers (mag, dx, dy)")
        self.score = float(self.score)
        self.offset = tuple(float(v) for v in self.offset)  # type: ignore[assignment]


@dataclass
class ObjectDetection:
    box: tuple[float, float, float, float]
    score: float

    def __post_init__(self) -> None:
        self.box = _box(self.box, "object")
        self.score = float(self.score)


@dataclass
class FrameDetections:
    """Hands and objects found in one sampled frame at ``time`` seconds of the video."""

    time: float
    width: int
    height: int
    hands: list[HandDetection] = field(default_factory=list)
    objects: list[ObjectDetection] = field(default_factory=list)

    def to_dict(self) -> dict:
        r = lambda xs: [round(float(x), 5) for x in xs]  # noqa: E731
        return {
            "time": round(float(self.time), 4),
            "width": int(self.width),
            "height": int(self.height),
            "hands": [
                {"box": r(h.box), "score": round(h.score, 4), "state": h.state, "side": h.side,
                 "offset": [float(f"{v:.6g}") for v in h.offset]}
                for h in self.hands
            ],
            "objects": [{"box": r(o.box), "score": round(o.score, 4)} for o in self.objects],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FrameDetections":
        try:
            return cls(
                time=float(d["time"]),
                width=int(d["width"]),
                height=int(d["height"]),
                hands=[HandDetection(tuple(h["box"]), h["score"], h["state"], h["side"], tuple(h["offset"]))
                       for h in d.get("hands", [])],
                objects=[ObjectDetection(tuple(o["box"]), o["score"]) for o in d.get("objects", [])],
            )
        except KeyError as e:
            raise DetectionFormatError(f"frame detections missing key {e} in {d!r:.200}") from e


def box_centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def offset_from_vector(vx_px: float, vy_px: float) -> tuple[float, float, float]:
    """(mag, dx, dy) in the 100DOH convention for a pixel displacement (vx, vy): unit direction
    scaled by 0.1 and ``mag = |v| / (OFFSET_SCALE * 0.1)`` so that ``mag * 10000 * (dx, dy) = v``."""
    n = float(np.hypot(vx_px, vy_px))
    if n < 1e-9:
        return (0.0, 0.0, 0.0)
    return (n / (OFFSET_SCALE * 0.1), 0.1 * vx_px / n, 0.1 * vy_px / n)


def jsonable(x: Any) -> Any:
    """Convert numpy scalars/arrays inside nested containers to plain Python for JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float):
        return round(x, 5)
    return x
