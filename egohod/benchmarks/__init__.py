"""Egocentric benchmarks: official-definition scorers, annotation readers, zero-shot protocols
(EK-100 MIR / CLS, EGTEA, EgoMCQ) and feature extraction for temporal tasks.

``egohod.benchmarks.scorers`` needs only numpy; the protocols import torch and the model zoo
when they run. See ``docs/benchmarks.md``.
"""
from .scorers import (
    classification_scores,
    ek100_action_scores,
    ek100_mir_scores,
    egomcq_scores,
    mq_scores,
    nlq_scores,
    segmentation_scores,
)

__all__ = [
    "classification_scores",
    "ek100_action_scores",
    "ek100_mir_scores",
    "egomcq_scores",
    "mq_scores",
    "nlq_scores",
    "segmentation_scores",
]
