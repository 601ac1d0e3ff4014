"""Hand-object detectors producing 100DOH fields per frame: ``100doh`` (Faster R-CNN ResNet-101
on the official checkpoint), ``mediapipe`` (MediaPipe hand landmarks + a grasp-region object
rule), ``precomputed`` (EK-100 public detections or 100DOH per-frame arrays) and ``skin`` (no
weights; skin colour + motion heuristics)."""
from .base import ClipFrames, Detector, create_detector, list_detectors, register_detector

__all__ = ["ClipFrames", "Detector", "create_detector", "list_detectors", "register_detector"]
