"""The detector interface and registry.

Every detector turns the sampled frames of one clip into one :class:`FrameDetections` per frame
(100DOH fields, boxes normalised to [0, 1])::

    det = create_detector("skin", work_size=160)     # settings: the fields of the detector's Options
    frames = det.detect(ClipFrames(video_id, times, pixels))   # list[FrameDetections]

Detectors that read detections computed elsewhere (``precomputed``) set ``needs_pixels = False``
so the runner does not decode video for them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...registry import Registry
from ..types import FrameDetections


@dataclass
class ClipFrames:
    """The sampled frames of one clip: ``pixels`` uint8 [T, H, W, 3] RGB (or None when the detector
    does not need pixels) at ``times`` seconds of video ``video_id``."""

    video_id: str
    times: np.ndarray
    pixels: np.ndarray | None = None


class Detector:
    name: str = "base"
    needs_pixels: bool = True

    def detect(self, clip: ClipFrames) -> list[FrameDetections]:
        raise NotImplementedError

    def detect_batch(self, clips: list[ClipFrames]) -> list[list[FrameDetections]]:
        """Detections for several clips; detectors that batch on an accelerator override this."""
        return [self.detect(c) for c in clips]


DETECTORS = Registry("detector", builtins=tuple(f"{__package__}.{m}" for m in ("doh100", "mediapipe_hands", "precomputed", "skin")))


def register_detector(name: str, options: type):
    """Class decorator registering a :class:`Detector` subclass built as ``cls(options)``, where
    ``options`` is its settings dataclass: the one place their defaults live (the
    ``detector=<name>`` config schema is generated from it)."""
    return DETECTORS.register(name, options=options)


def list_detectors() -> list[str]:
    return DETECTORS.list()


def create_detector(name: str, **kwargs) -> Detector:
    """Build a registered detector with its settings (the fields of its ``Options``)."""
    return DETECTORS.get(name)(DETECTORS.options(name, kwargs))
