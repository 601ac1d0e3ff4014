"""Model zoo: registry, input specs, EgoVideo towers, official-checkpoint loading, frozen encoders."""
from .checkpoint_io import CheckpointError
from .registry import (
    create_model,
    get_input_spec,
    list_encoders,
    list_models,
    load_encoder,
    register_encoder,
    register_model,
)
from .spec import InputSpec

__all__ = [
    "CheckpointError",
    "InputSpec",
    "create_model",
    "get_input_spec",
    "list_encoders",
    "list_models",
    "load_encoder",
    "register_encoder",
    "register_model",
]
