"""``skin``: a hand-object detector that needs no weights (numpy + scipy.ndimage).

What it does, per clip:

* **hands** = the (at most two) largest connected regions of skin-coloured pixels (a YCrCb box
  AND the classic RGB skin rule), after a morphological opening/closing, above a minimum area.
  Side: with two regions the left-most is the left hand; with one, the half of the frame it is
  in (the usual egocentric layout). Score = 0.5 + 0.5 x the fraction of its box that is skin.
* **objects** = connected non-skin regions that differ from the clip's per-pixel temporal median
  (moving things), plus strongly saturated non-skin regions touching a hand.
* **contact** = an object region touching the (slightly dilated) hand region: ``P`` when the
  object region comes from motion (it moves during the clip), ``F`` when it is a static saturated
  region; otherwise ``N``. The offset points from the hand centre to that object's centre in the
  100DOH ``(mag, dx, dy)`` convention, so the standard linking recovers the touched object.

What it cannot do: tell hands from faces, arms, legs or other skin-coloured surfaces (wood,
cardboard, some foods); detect gloved hands or skin tones outside its colour box under unusual
lighting; tell left from right beyond image position; find objects that neither move nor stand
out in saturation; separate an object from a same-coloured background; predict the ``S`` (self)
and ``O`` (other person) contact states. It is meant for smoke tests, synthetic data and a
first pass on a fresh machine; use ``100doh`` for real data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import FrameDetections, HandDetection, ObjectDetection, offset_from_vector
from .base import ClipFrames, Detector, register_detector


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean skin mask of uint8 RGB frames [..., 3]: YCrCb box AND the RGB skin rule."""
    x = rgb.astype(np.int32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 128
    cb = (b - y) * 0.564 + 128
    ycc = (cr >= 135) & (cr <= 173) & (cb >= 77) & (cb <= 127) & (y > 40)
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    rule = (r > 95) & (g > 40) & (b > 20) & (mx - mn > 15) & (np.abs(r - g) > 15) & (r > g) & (r > b)
    return ycc & rule


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max of uint8 RGB frames, computed channel-wise (fast)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b).astype(np.float32)
    mn = np.minimum(np.minimum(r, g), b).astype(np.float32)
    return (mx - mn) / np.maximum(mx, 1.0)


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square over the last two axes (separable max filter)."""
    from scipy import ndimage as ndi

    size = (1,) * (mask.ndim - 2) + (2 * r + 1, 2 * r + 1)
    return ndi.maximum_filter(mask.astype(np.uint8), size=size) > 0


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    from scipy import ndimage as ndi

    size = (1,) * (mask.ndim - 2) + (2 * r + 1, 2 * r + 1)
    return ndi.minimum_filter(mask.astype(np.uint8), size=size, mode="nearest") > 0


def _open(mask: np.ndarray) -> np.ndarray:
    return _dilate(_erode(mask, 1), 1)


def _close(mask: np.ndarray) -> np.ndarray:
    return _erode(_dilate(mask, 1), 1)


def _resize_nearest(frames: np.ndarray, short: int) -> np.ndarray:
    T, H, W, _ = frames.shape
    s = min(1.0, short / min(H, W))
    h, w = max(8, int(round(H * s))), max(8, int(round(W * s)))
    yi = np.minimum((np.arange(h) + 0.5) * H / h, H - 1).astype(int)
    xi = np.minimum((np.arange(w) + 0.5) * W / w, W - 1).astype(int)
    return frames[:, yi][:, :, xi]


@dataclass
class Options:
    work_size: int = 160  # frames are analysed at this short side
    min_area: float = 0.004  # smallest hand/object region, as a fraction of the frame
    max_hands: int = 2
    motion_threshold: float = 40.0  # summed |RGB - clip median| that marks a moving pixel
    saturation_threshold: float = 0.55  # HSV saturation above which a pixel may be an object
    contact_margin: float = 0.02  # touching: object within this fraction of the longer frame side of a hand
    max_objects: int = 5


@register_detector("skin", options=Options)
class SkinMotionDetector(Detector):
    """Skin-colour + motion hand/object proposals; no weights needed (see module docstring)."""

    name = "skin"
    needs_pixels = True

    def __init__(self, options: Options = Options()):
        self.work_size = int(options.work_size)
        self.min_area = float(options.min_area)
        self.max_hands = int(options.max_hands)
        self.motion_threshold = float(options.motion_threshold)
        self.saturation_threshold = float(options.saturation_threshold)
        self.contact_margin = float(options.contact_margin)
        self.max_objects = int(options.max_objects)

    # ------------------------------------------------------------------ per-clip
    def detect(self, clip: ClipFrames) -> list[FrameDetections]:
        from scipy import ndimage as ndi

        px = clip.pixels
        if px is None or px.ndim != 4 or px.shape[-1] != 3 or px.dtype != np.uint8:
            got = None if px is None else (px.shape, px.dtype)
            raise ValueError(f"skin detector needs uint8 frames [T, H, W, 3], got {got}")
        T, H, W, _ = px.shape
        small = _resize_nearest(px, self.work_size)
        h, w = small.shape[1:3]
        min_px = max(4, int(self.min_area * h * w))
        skin = _close(_open(skin_mask(small)))
        background = np.median(small.astype(np.float32), axis=0)
        # pixels whose background is skin are ghosts of a moving hand, not objects
        ghost = _dilate(skin_mask(background.round().astype(np.uint8)), 2)
        moving = (np.abs(small.astype(np.float32) - background).sum(-1) > self.motion_threshold) & ~ghost
        saturated = saturation(small) > self.saturation_threshold
        margin = max(1, int(round(self.contact_margin * max(h, w))))
        frames = []
        for t in range(T):
            near_skin = _dilate(skin[t], 2)
            hands = self._regions(skin[t], min_px, ndi)
            hands = sorted(hands, key=lambda r: -r["area"])[: self.max_hands]
            zone = _dilate(skin[t], margin)
            cand = _open((moving[t] | saturated[t]) & ~near_skin)
            objects = []
            for r in self._regions(cand, min_px, ndi):
                r["moving"] = float((r["mask"] & moving[t]).sum()) / r["area"]
                if r["moving"] >= 0.3 or (r["mask"] & zone).any():
                    objects.append(r)
            objects = sorted(objects, key=lambda r: -r["area"])[: self.max_objects]
            for hr in hands:
                hz = _dilate(hr["mask"], margin)
                touching = [(int((o["mask"] & hz).sum()), j) for j, o in enumerate(objects)]
                touching = [tj for tj in touching if tj[0] > 0]
                hr["contact"] = objects[max(touching)[1]] if touching else None
            frames.append((hands, objects))
        self._assign_sides(frames)
        portable = self._portable(frames, w, h)
        return [self._frame(clip.times[t], W, H, h, w, hs, os_, portable) for t, (hs, os_) in enumerate(frames)]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _regions(mask: np.ndarray, min_px: int, ndi) -> list[dict]:
        lab, _ = ndi.label(mask)
        regs = []
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            m = lab == i
            area = int(m.sum())
            if area < min_px:
                continue
            box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
            fill = area / max(1, (box[2] - box[0]) * (box[3] - box[1]))
            cx = (box[0] + box[2]) / 2
            regs.append({"mask": m, "area": area, "box": box, "fill": fill, "cx": cx,
                         "cy": (box[1] + box[3]) / 2})
        return regs

    @staticmethod
    def _assign_sides(frames: list) -> None:
        """Sides consistent over the clip: in frames with two hands the left-most is the left one;
        single hands take the side whose mean position (over two-hand frames) is nearer, or, in
        clips that never show two hands, the image half of the hand's mean position."""
        two = [hs for hs, _ in frames if len(hs) == 2]
        for hs in two:
            hs.sort(key=lambda r: r["cx"])
            hs[0]["side"], hs[1]["side"] = "left", "right"
        singles = [hs[0] for hs, _ in frames if len(hs) == 1]
        if not singles:
            return
        if two:
            ml = np.mean([hs[0]["cx"] for hs in two])
            mr = np.mean([hs[1]["cx"] for hs in two])
            for r in singles:
                r["side"] = "left" if abs(r["cx"] - ml) <= abs(r["cx"] - mr) else "right"
        else:
            width = frames[0][0][0]["mask"].shape[1] if frames[0][0] else None
            width = width or next(hs[0]["mask"].shape[1] for hs, _ in frames if hs)
            side = "left" if np.mean([r["cx"] for r in singles]) < width / 2 else "right"
            for r in singles:
                r["side"] = side

    @staticmethod
    def _portable(frames: list, w: int, h: int) -> dict:
        """Per side: is the touched object portable (it moves over the clip) or stationary?"""
        out = {}
        for side in ("left", "right"):
            cs = [(r["contact"]["cx"] / w, r["contact"]["cy"] / h, r["contact"]["moving"])
                  for hs, _ in frames for r in hs if r.get("side") == side and r["contact"] is not None]
            if not cs:
                continue
            c = np.array(cs)
            shift = float(np.hypot(*(c[:, :2].max(0) - c[:, :2].min(0))))
            out[side] = shift > 0.03 or float(c[:, 2].mean()) > 0.5
        return out

    def _frame(self, time, W, H, h, w, hands, objects, portable) -> FrameDetections:
        norm = lambda b: (b[0] / w, b[1] / h, b[2] / w, b[3] / h)  # noqa: E731
        dets = []
        for r in hands:
            state, offset = "N", (0.0, 0.0, 0.0)
            o = r["contact"]
            if o is not None:
                state = "P" if portable.get(r["side"]) else "F"
                offset = offset_from_vector((o["cx"] - r["cx"]) * W / w, (o["cy"] - r["cy"]) * H / h)
            dets.append(HandDetection(norm(r["box"]), 0.5 + 0.5 * r["fill"], state, r["side"], offset))
        objs = [ObjectDetection(norm(o["box"]), 0.5 + 0.5 * o["fill"]) for o in objects]
        return FrameDetections(float(time), int(W), int(H), dets, objs)

