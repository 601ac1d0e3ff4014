"""Model zoo: registry, input specs, EgoVideo towers, official-checkpoint loading, frozen encoders."""
from .checkpoint_io import CheckpointError
from .registry import (
    create_model,
    get_input_spec,
    is_random_weights,
    list_encoders,
    list_models,
    load_encoder,
    random_weights_id,
    random_weights_seed,
    register_encoder,
    register_model,
)
from .spec import InputSpec

__all__ = [
    "CheckpointError",
    "InputSpec",
    "create_model",
    "get_input_spec",
    "is_random_weights",
    "list_encoders",
    "list_models",
    "load_encoder",
    "random_weights_id",
    "random_weights_seed",
    "register_encoder",
    "register_model",
]
