"""Hand-object dynamics from per-frame detections: tracks, interpolation, links and a compact
structured summary.

Steps (each a small function, composed by :func:`summarize_dynamics`):

1. keep hands / objects above the score thresholds (100DOH defaults 0.5 / 0.5);
2. link every in-contact hand to the object whose centre is nearest to
   ``hand_centre + mag * 10000 * (dx, dy)`` (pixels of the detector's frame), as 100DOH does;
3. hand tracks by side (the best-scoring hand of each side per frame), object tracks by greedy
   IoU association across frames;
4. missing boxes linearly interpolated in time between observed frames (never extrapolated);
5. a summary per hand (motion direction and extent, contact changes, objects held, and its
   contact *phases*: runs of one contact state with the hand's motion over the run and, while in
   contact, the held object's motion) and per object (motion, which hands held it), plus short
   event lines for prompts.

Coordinates are normalised image coordinates: x grows to the right, y grows downwards.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import CONTACT_NAMES, HAND_SIDES, OFFSET_SCALE, FrameDetections, box_centre


@dataclass(frozen=True)
class DynamicsConfig:
    hand_threshold: float = 0.5
    object_threshold: float = 0.5
    track_iou: float = 0.3  # IoU that continues an object track ...
    track_distance: float = 1.5  # ... or centre distance below this many box sizes (fast motion)
    still_extent: float = 0.03  # displacement below this (normalised) counts as "still"
    scale_change: float = 1.3  # box-area ratio above which a hand/object "approaches"


# ----------------------------------------------------------------------------- links
def link_hands_to_objects(frame: FrameDetections, hand_threshold: float = 0.5,
                          object_threshold: float = 0.5) -> list[int]:
    """For each hand of ``frame`` the index (into ``frame.objects``) of its linked object, or -1.

    A hand is linked when it scores above ``hand_threshold``, its contact state is not N and some
    object scores above ``object_threshold``. The expected object position is
    ``hand_centre + mag * 10000 * (dx, dy)`` in pixels; the nearest object centre wins.
    """
    wh = np.array([frame.width, frame.height], dtype=np.float64)
    idx = [i for i, o in enumerate(frame.objects) if o.score >= object_threshold]
    centres = np.array([box_centre(frame.objects[i].box) * wh for i in idx]).reshape(-1, 2)
    links = []
    for h in frame.hands:
        if h.score < hand_threshold or h.state == "N" or not idx:
            links.append(-1)
            continue
        mag, dx, dy = h.offset
        point = box_centre(h.box) * wh + mag * OFFSET_SCALE * np.array([dx, dy])
        links.append(idx[int(np.argmin(((centres - point) ** 2).sum(1)))])
    return links


# ----------------------------------------------------------------------------- interpolation
def interpolate_boxes(times: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN rows of ``boxes`` [T, 4] by linear interpolation in ``times`` between the nearest
    observed rows before and after. Rows before the first or after the last observation stay
    NaN (no extrapolation). Returns ``(filled, observed_mask)``."""
    times = np.asarray(times, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(times) != len(boxes):
        raise ValueError(f"interpolate_boxes needs times [T] and boxes [T, 4], got {times.shape} and {boxes.shape}")
    observed = ~np.isnan(boxes).any(1)
    out = boxes.copy()
    obs = np.flatnonzero(observed)
    if len(obs) == 0:
        return out, observed
    inside = (np.arange(len(times)) > obs[0]) & (np.arange(len(times)) < obs[-1]) & ~observed
    for j in range(4):
        out[inside, j] = np.interp(times[inside], times[obs], boxes[obs, j])
    return out, observed


# ----------------------------------------------------------------------------- tracks
def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    boxes: np.ndarray  # [T, 4] with NaN where missing (before interpolation)
    states: list  # per frame contact state (hands) or None
    links: list  # per frame linked object track id (hands) or holding hand sides (objects)


def build_hand_tracks(frames: list[FrameDetections], links: list[list[int]], obj_track_of: list[dict],
                      hand_threshold: float) -> dict[str, Track]:
    T = len(frames)
    tracks: dict[str, Track] = {}
    for side in HAND_SIDES:
        boxes = np.full((T, 4), np.nan)
        states: list = [None] * T
        held: list = [None] * T
        for t, f in enumerate(frames):
            cands = [(h.score, i) for i, h in enumerate(f.hands) if h.side == side and h.score >= hand_threshold]
            if not cands:
                continue
            _, i = max(cands)
            h = f.hands[i]
            boxes[t] = h.box
            states[t] = h.state
            if links[t][i] >= 0:
                held[t] = obj_track_of[t][links[t][i]]
        if any(s is not None for s in states):
            tracks[side] = Track(boxes, states, held)
    return tracks


def _match_score(a, b, iou_threshold: float, max_distance: float) -> float:
    """> 0 when box ``a`` may continue a track whose last box is ``b``: IoU when it reaches the
    threshold, else a small score decreasing with the centre distance (in box sizes)."""
    v = _iou(a, b)
    if v >= iou_threshold:
        return 1.0 + v
    size = 0.5 * (np.sqrt(max(1e-12, (a[2] - a[0]) * (a[3] - a[1]))) + np.sqrt(max(1e-12, (b[2] - b[0]) * (b[3] - b[1]))))
    d = float(np.hypot(*(box_centre(a) - box_centre(b)))) / size
    return 1.0 - d / max_distance if d < max_distance else 0.0


def build_object_tracks(frames: list[FrameDetections], object_threshold: float, iou_threshold: float,
                        max_distance: float = 1.5) -> tuple[list[Track], list[dict]]:
    """Greedy association of objects across frames (IoU, or centre distance for fast motion).
    Returns the tracks and, per frame, a map from object index to track id."""
    T = len(frames)
    tracks: list[Track] = []
    last_box: list = []
    per_frame: list[dict] = []
    for t, f in enumerate(frames):
        mapping: dict[int, int] = {}
        kept = sorted((-o.score, i) for i, o in enumerate(f.objects) if o.score >= object_threshold)
        free = set(range(len(tracks)))
        for _, i in kept:
            box = f.objects[i].box
            best, best_score = -1, 0.0
            for k in sorted(free):
                v = _match_score(box, last_box[k], iou_threshold, max_distance)
                if v > best_score:
                    best, best_score = k, v
            if best < 0:
                tracks.append(Track(np.full((T, 4), np.nan), [None] * T, [set() for _ in range(T)]))
                last_box.append(box)
                best = len(tracks) - 1
            else:
                free.discard(best)
            tracks[best].boxes[t] = box
            last_box[best] = box
            mapping[i] = best
        per_frame.append(mapping)
    return tracks, per_frame


# ----------------------------------------------------------------------------- motion words
def direction_words(d: np.ndarray, still: float) -> str:
    """Compass words for a displacement in image coordinates (y down)."""
    dx, dy = float(d[0]), float(d[1])
    if np.hypot(dx, dy) < still:
        return "still"
    parts = []
    if abs(dy) >= 0.4 * abs(dx):
        parts.append("down" if dy > 0 else "up")
    if abs(dx) >= 0.4 * abs(dy):
        parts.append("right" if dx > 0 else "left")
    return "-".join(parts)


def _motion(times: np.ndarray, boxes: np.ndarray, observed: np.ndarray, cfg: DynamicsConfig) -> dict:
    valid = ~np.isnan(boxes).any(1)
    idx = np.flatnonzero(valid)
    c = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    first, last = idx[0], idx[-1]
    disp = c[last] - c[first]
    path = float(np.linalg.norm(np.diff(c[idx], axis=0), axis=1).sum()) if len(idx) > 1 else 0.0
    ratio = float(area[last] / area[first]) if area[first] > 0 else 1.0
    scale = "larger" if ratio >= cfg.scale_change else "smaller" if ratio <= 1 / cfg.scale_change else "same"
    return {
        "visible": round(float(observed.mean()), 3),
        "first_seen": round(float(times[first]), 3),
        "last_seen": round(float(times[last]), 3),
        "start_centre": [round(float(v), 3) for v in c[first]],
        "end_centre": [round(float(v), 3) for v in c[last]],
        "displacement": [round(float(v), 3) for v in disp],
        "extent": round(float(np.hypot(*disp)), 3),
        "path_length": round(path, 3),
        "direction": direction_words(disp, cfg.still_extent),
        "size_change": scale,
    }


def _runs(values: list, times: np.ndarray) -> list[dict]:
    """Compress a per-frame sequence (None = unseen) into changes between consecutive seen values."""
    changes, prev = [], None
    for t, v in enumerate(values):
        if v is None:
            continue
        if prev is not None and v != prev:
            changes.append({"time": round(float(times[t]), 3), "from": prev, "to": v})
        prev = v
    return changes


def _centre_at(boxes: np.ndarray, t: int, lo: int, hi: int, forward: bool):
    """Centre of the first observed/interpolated box from frame ``t`` towards ``hi`` (or back to ``lo``)."""
    rng = range(t, hi + 1) if forward else range(t, lo - 1, -1)
    for u in rng:
        if not np.isnan(boxes[u]).any():
            return box_centre(boxes[u])
    return None


def contact_phases(times: np.ndarray, states: list, hand_boxes: np.ndarray, held: list,
                   object_boxes: list[np.ndarray], cfg: DynamicsConfig) -> list[dict]:
    """Runs of one contact state of a hand. Each phase has its state, start/end time, the hand's
    motion from the phase's first frame to the first frame of the next phase (the whole reach
    before a grasp, the whole pull before a release) and, for an in-contact phase linked to an
    object, that object's motion over the same frames."""
    seen = [t for t, s in enumerate(states) if s is not None]
    runs: list[tuple[str, list[int]]] = []
    for t in seen:
        if runs and runs[-1][0] == states[t]:
            runs[-1][1].append(t)
        else:
            runs.append((states[t], [t]))
    phases = []
    for j, (state, idx) in enumerate(runs):
        a = idx[0]
        b = runs[j + 1][1][0] if j + 1 < len(runs) else idx[-1]
        disp = box_centre(hand_boxes[b]) - box_centre(hand_boxes[a])
        ph = {"state": state, "start": round(float(times[a]), 3), "end": round(float(times[idx[-1]]), 3),
              "frames": len(idx), "direction": direction_words(disp, cfg.still_extent),
              "extent": round(float(np.hypot(*disp)), 3), "displacement": [round(float(v), 3) for v in disp]}
        links = [held[t] for t in idx if held[t] is not None]
        if state != "N" and links:
            k = max(set(links), key=lambda x: (links.count(x), -x))
            ca = _centre_at(object_boxes[k], a, a, b, forward=True)
            cb = _centre_at(object_boxes[k], b, a, b, forward=False)
            od = cb - ca if ca is not None and cb is not None else np.zeros(2)
            ph.update(object=f"o{k + 1}", object_direction=direction_words(od, cfg.still_extent),
                      object_extent=round(float(np.hypot(*od)), 3),
                      object_displacement=[round(float(v), 3) for v in od])
        phases.append(ph)
    return phases


# ----------------------------------------------------------------------------- summary
def summarize_dynamics(frames: list[FrameDetections], cfg: DynamicsConfig = DynamicsConfig()) -> dict:
    """The structured dynamics summary of one clip (JSON-serialisable)."""
    if not frames:
        raise ValueError("summarize_dynamics needs at least one frame of detections")
    times = np.array([f.time for f in frames], dtype=np.float64)
    if np.any(np.diff(times) < 0):
        raise ValueError(f"frame times must be non-decreasing, got {times.tolist()}")
    obj_tracks, obj_of = build_object_tracks(frames, cfg.object_threshold, cfg.track_iou, cfg.track_distance)
    links = [link_hands_to_objects(f, cfg.hand_threshold, cfg.object_threshold) for f in frames]
    hand_tracks = build_hand_tracks(frames, links, obj_of, cfg.hand_threshold)
    for side, tr in hand_tracks.items():
        for t, k in enumerate(tr.links):
            if k is not None:
                obj_tracks[k].links[t].add(side)

    obj_filled = [interpolate_boxes(times, tr.boxes) for tr in obj_tracks]
    hands = {}
    for side, tr in hand_tracks.items():
        filled, observed = interpolate_boxes(times, tr.boxes)
        info = _motion(times, filled, observed, cfg)
        seen = [s for s in tr.states if s is not None]
        info["contact_states"] = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
        info["contact_changes"] = _runs(tr.states, times)
        held = [k for k in tr.links if k is not None]
        info["holds"] = [f"o{k + 1}" for k in sorted(set(held), key=held.index)]
        info["in_contact_fraction"] = round(sum(s not in (None, "N") for s in tr.states) / len(frames), 3)
        info["boxes"] = [None if np.isnan(b).any() else [round(float(v), 4) for v in b] for b in filled]
        info["interpolated"] = [bool(not o and not np.isnan(b).any()) for o, b in zip(observed, filled)]
        info["phases"] = contact_phases(times, tr.states, filled, tr.links, [f for f, _ in obj_filled], cfg)
        hands[side] = info

    objects = []
    for k, tr in enumerate(obj_tracks):
        filled, observed = obj_filled[k]
        info = {"id": f"o{k + 1}", **_motion(times, filled, observed, cfg)}
        info["held_by"] = sorted({s for ls in tr.links for s in ls})
        info["held_fraction"] = round(sum(bool(ls) for ls in tr.links) / len(frames), 3)
        objects.append(info)
    # most relevant objects first: held ones, then by visibility
    objects.sort(key=lambda o: (-o["held_fraction"], -o["visible"], o["id"]))
    return {
        "num_frames": len(frames),
        "duration": round(float(times[-1] - times[0]), 3),
        "hands": hands,
        "objects": objects,
        "events": describe_dynamics(hands, objects),
    }


def describe_dynamics(hands: dict, objects: list[dict]) -> list[str]:
    """Short factual lines (one per hand / held object) for prompts and the template narrator."""
    lines = []
    for side in HAND_SIDES:
        if side not in hands:
            lines.append(f"{side} hand: not visible")
            continue
        h = hands[side]
        move = "stays still" if h["direction"] == "still" else f"moves {h['direction']} by {h['extent']:.2f} of the frame"
        states = " -> ".join(CONTACT_NAMES[s] for s in h["contact_states"]) or "unknown contact"
        verb = "holding" if "P" in h["contact_states"] else "touching"
        held = f", {verb} {', '.join(h['holds'])}" if h["holds"] else ""
        size = {"larger": ", comes closer to the camera", "smaller": ", moves away from the camera"}.get(h["size_change"], "")
        lines.append(f"{side} hand: {move}{size}; {states}{held}")
    for o in objects:
        if not o["held_by"]:
            continue
        move = "stays in place" if o["direction"] == "still" else f"moves {o['direction']} by {o['extent']:.2f}"
        lines.append(f"{o['id']}: in contact with the {' and '.join(o['held_by'])} hand, {move}")
    return lines
