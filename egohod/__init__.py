"""egohod: egocentric hand-object-dynamics video representations for robots.

The promised public surface is small on purpose::

    import egohod
    model = egohod.create_model("egovideo_b", checkpoint="base_best.pt")
    enc = egohod.load_encoder("egovideo_b", checkpoint="base_best.pt")
    tok = egohod.get_tokenizer("egovideo_b")
    tf = egohod.create_transforms("egovideo_b", train=False)
"""
from .models import InputSpec, create_model, get_input_spec, list_encoders, list_models, load_encoder

__version__ = "0.1.0"


def get_tokenizer(name: str, **kwargs):
    """Tokenizer of a registered model (CLIP BPE for EgoVideo B/L, BERT for G: pass
    ``bert_path=`` a local bert-large-uncased directory)."""
    from .tokenizer import get_tokenizer as _get

    return _get(name, **kwargs)


def create_transforms(name: str, train: bool = False):
    """Video transforms built from a registered model's input spec."""
    from .data.transforms import create_transforms as _create

    return _create(name, train=train)


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
