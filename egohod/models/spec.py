"""Input specifications carried by every registered model and encoder.

A spec travels with the weights: transforms, frozen encoders and exported files are built from
it, never from numbers re-typed at the call site.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: pixels are 0..1 floats normalised with ``mean``/``std``.

    ``resize_size`` is the short side frames are resized to before the ``image_size`` centre
    crop at evaluation time.
    """

    image_size: int
    num_frames: int
    embed_dim: int
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resize_size: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.image_size <= 0 or self.num_frames <= 0 or self.embed_dim <= 0:
            raise ValueError(f"InputSpec needs positive sizes, got {self}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"InputSpec mean/std need 3 channels, got {self.mean} / {self.std}")

    @property
    def eval_resize(self) -> int:
        return self.resize_size or self.image_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)
