"""egohod: egocentric hand-object-dynamics video representations for robots.

The promised public surface is small on purpose::

    import egohod
    model = egohod.create_model("egovideo_b", checkpoint="base_best.pt")
    enc = egohod.load_encoder("egovideo_b", checkpoint="base_best.pt")
    tok = egohod.get_tokenizer("egovideo_b")
    tf = egohod.create_transforms("egovideo_b", train=False)
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Imported on first use (PEP 562), so that ``import egohod.registry`` / ``egohod.fileio`` (which
# the environment and policy packages use) does not load torch and the model zoo.
_FROM_MODELS = ("InputSpec", "create_model", "get_input_spec", "list_encoders", "list_models", "load_encoder")


def __getattr__(name: str):
    if name in _FROM_MODELS:
        value = getattr(importlib.import_module(".models", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):  # a subpackage: egohod.data, egohod.hod, ...
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_MODELS))


def get_tokenizer(name: str, **kwargs):
    """Tokenizer of a registered model (CLIP BPE for EgoVideo B/L, BERT for G: pass
    ``bert_path=`` a local bert-large-uncased directory)."""
    from .tokenizer import get_tokenizer as _get

    return _get(name, **kwargs)


def create_transforms(name: str, train: bool = False, generator=None):
    """Video transforms built from a registered model's input spec (``egohod.data.transforms``;
    ``generator``: a ``torch.Generator`` for the train-time random crop and flip)."""
    from .data.transforms import transforms_from_spec
    from .models import get_input_spec

    return transforms_from_spec(get_input_spec(name), train=train, generator=generator)


__all__ = [
    "InputSpec",
    "create_model",
    "create_transforms",
    "get_input_spec",
    "get_tokenizer",
    "list_encoders",
    "list_models",
    "load_encoder",
]
