"""load_encoder builds the vision tower alone and reads only the checkpoint's ``visual.*`` keys,
strictly: no text tower (BERT-large for G) is built just to be dropped."""
import numpy as np
import pytest
import torch

import egohod
from egohod.models import egovideo, internvideo2
from egohod.models.checkpoint_io import CheckpointError
from egohod.models.internvideo2 import EgoVideoGConfig
from egohod.models.variants import G_SPEC, frozen_egovideo_g

from .test_egovideo_g import GOLDEN, TINY_G, upstream_g  # noqa: F401 - the fixture


def _no_text_tower(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a text tower was built for a frozen encoder")

    monkeypatch.setattr(egovideo.TextTransformer, "__init__", refuse)
    monkeypatch.setattr(internvideo2.BertTextEncoder, "__init__", refuse)


def test_encoder_is_the_full_models_vision_tower_without_building_the_text_tower(tmp_path, monkeypatch):
    full = egohod.create_model("egovideo_tiny", seed=5)
    with torch.no_grad():
        for p in full.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "full.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in full.state_dict().items()}}, path)
    _no_text_tower(monkeypatch)
    enc = egohod.load_encoder("egovideo_tiny", checkpoint=path)
    assert set(enc.state_dict()) == {k for k in full.state_dict() if k.startswith("visual.") and ".adapter." not in k}
    x = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        ref = full.encode_video(enc.preprocess(enc.check_frames(x)))
    torch.testing.assert_close(enc(x), ref)


def test_random_encoder_weights_are_the_full_models_vision_tower():
    """Random weights stay a function of (name, seed), as before the vision-only path."""
    enc = egohod.load_encoder("egovideo_tiny", seed=3).state_dict()
    full = egohod.create_model("egovideo_tiny", seed=3, adapter=False).state_dict()
    assert set(enc) == {k for k in full if k.startswith("visual.")}
    assert all(torch.equal(enc[k], full[k]) for k in enc)


def test_vision_keys_are_loaded_strictly(tmp_path):
    sd = {k: v for k, v in egohod.create_model("egovideo_tiny", adapter=False).state_dict().items()
          if k.startswith("visual.")}
    missing = dict(sd)
    del missing["visual.ln_post.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"(?s)does not match egovideo_tiny:.*missing key\(s\): visual\.ln_post\.weight"):
        egohod.load_encoder("egovideo_tiny", checkpoint=tmp_path / "missing.pt")
    torch.save({**sd, "visual.transformer.resblocks.0.extra": torch.zeros(3)}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): visual\.transformer\.resblocks\.0\.extra"):
        egohod.load_encoder("egovideo_tiny", checkpoint=tmp_path / "extra.pt")
    torch.save({**sd, "textual.anything": torch.zeros(3)}, tmp_path / "text.pt")  # other towers are not read
    assert egohod.load_encoder("egovideo_tiny", checkpoint=tmp_path / "text.pt").weights != "random"


def test_g_vision_tower_alone_matches_upstream(upstream_g, tmp_path, monkeypatch):  # noqa: F811
    sd, ref = upstream_g
    path = tmp_path / "g.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    _no_text_tower(monkeypatch)
    enc = frozen_egovideo_g("egovideo_g", EgoVideoGConfig(**TINY_G), G_SPEC, checkpoint=path)
    assert not any(k.startswith("textual.") for k in enc.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(enc.visual.forward_features(ref["video"]), ref["vision_tokens"], atol=1e-5, rtol=0)
        torch.testing.assert_close(enc.visual(ref["video"]), ref["video_embed"], atol=1e-5, rtol=0)
    assert np.isfinite(enc.num_frames) and enc.num_frames == ref["video"].shape[2]


def test_clip_length_follows_the_checkpoint_or_the_caller(tmp_path):
    model = egohod.create_model("egovideo_tiny", num_frames=6, adapter=False)
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith("visual.")}, tmp_path / "t6.pt")
    assert egohod.load_encoder("egovideo_tiny", checkpoint=tmp_path / "t6.pt").num_frames == 6
    assert egohod.load_encoder("egovideo_tiny", checkpoint=tmp_path / "t6.pt", num_frames=2).num_frames == 2
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        egohod.load_encoder("egovideo_tiny", num_frames=0)
