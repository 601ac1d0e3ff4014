"""Pure scorers: numpy arrays in, dicts of floats (percent) out. No model, no torch.

Each module's docstring states the official definition it reproduces and how ties and
degenerate inputs are handled.
"""
from .classification import classification_scores, ek100_action_scores, egomcq_scores, mean_class_accuracy, topk_accuracy
from .localization import mq_scores, nlq_scores, nlq_scores_from_json
from .retrieval import ek100_mir_scores
from .segmentation import segmentation_scores

__all__ = [
    "classification_scores",
    "ek100_action_scores",
    "ek100_mir_scores",
    "egomcq_scores",
    "mean_class_accuracy",
    "mq_scores",
    "nlq_scores",
    "nlq_scores_from_json",
    "segmentation_scores",
    "topk_accuracy",
]
