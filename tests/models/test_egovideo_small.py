"""egovideo_small: egohod's own CPU-trainable EgoVideo size (no official weights).

Shapes of every path (video, text, dual, frozen encoder), parameter counts, the input spec and
the strict round trip of a checkpoint in the pretraining format through ``load_encoder``.
"""
import pytest
import torch

import egohod
from egohod.models.variants import B_CONFIG, SMALL_CONFIG

# Parameter counts of the architecture (regenerate with sum(p.numel() ...) if the variant is
# deliberately changed; any other change here means the architecture drifted).
SMALL_PARAMS = {"total": 19_182_535, "visual": 3_158_214, "adapters": 281_094, "textual": 15_893_248}


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return egohod.create_model("egovideo_small").eval()


def test_registered_with_spec_and_no_official_weights():
    assert "egovideo_small" in egohod.list_models() and "egovideo_small" in egohod.list_encoders()
    s = egohod.get_input_spec("egovideo_small")
    assert (s.image_size, s.num_frames, s.embed_dim, s.eval_resize) == (112, 4, 256, 112)
    assert s.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert s.extra["tokenizer"] == "clip_bpe" and "none official" in s.extra["weights"]


def test_same_family_as_b_with_small_dims(small):
    same = ("patch_size", "mlp_ratio", "vision_ln_eps", "text_ln_eps", "vocab_size", "context_length", "adapter")
    assert all(getattr(SMALL_CONFIG, k) == getattr(B_CONFIG, k) for k in same)
    assert (SMALL_CONFIG.vision_width, SMALL_CONFIG.vision_layers, SMALL_CONFIG.vision_heads) == (192, 6, 3)
    assert (SMALL_CONFIG.text_width, SMALL_CONFIG.text_layers, SMALL_CONFIG.text_heads) == (256, 4, 4)
    v = small.visual
    assert isinstance(v.conv1, torch.nn.Linear) and tuple(v.conv1.weight.shape) == (192, 3 * 16 * 16)
    assert v.grid == (7, 7) and tuple(v.temporal_embedding.shape) == (4, 192)
    assert len(v.transformer.resblocks) == 6 and v.has_adapter
    assert tuple(small.slowfast_projection.shape) == (512, 256)
    assert small.textual.context_length == 77


def test_parameter_counts(small):
    count = lambda it: sum(p.numel() for p in it)  # noqa: E731
    got = {"total": count(small.parameters()), "visual": count(small.visual.parameters()),
           "adapters": count(p for n, p in small.visual.named_parameters() if ".adapter." in n),
           "textual": count(small.textual.parameters())}
    assert got == SMALL_PARAMS


def test_video_text_and_dual_shapes(small):
    torch.manual_seed(1)
    tok = egohod.get_tokenizer("egovideo_small")(["#C C opens the microwave", "#C C closes the slide cabinet"])
    assert tok.shape == (2, 77)
    fast, slow = torch.randn(2, 3, 4, 112, 112), torch.randn(2, 3, 16, 112, 112)
    with torch.no_grad():
        v, t = small.encode_video(fast), small.encode_text(tok)
        d = small.encode_video_dual(fast, slow, normalize=True)
        out = small(fast, tok, slow)
        feats = small.visual.forward_features(fast)
    assert v.shape == (2, 256) and t.shape == (2, 256) and d.shape == (2, 256)
    assert torch.allclose(d.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(out["video"], d, atol=1e-5) and out["text"].shape == (2, 256)
    assert feats.shape == (2, 1 + 4 * 49, 192)
    assert not torch.allclose(v[0], v[1])  # inputs differ -> embeddings differ
    with pytest.raises(ValueError, match="112x112"):
        small.encode_video(torch.randn(1, 3, 4, 224, 224))


def test_frozen_encoder_uint8_in_256_out():
    torch.manual_seed(0)
    enc = egohod.load_encoder("egovideo_small")
    assert enc.weights.startswith("random") and enc.embed_dim == 256 and enc.num_frames == 4
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    frames = torch.randint(0, 256, (2, 4, 96, 128, 3), dtype=torch.uint8)  # any size: it resizes and crops
    with torch.no_grad():
        z = enc(frames)
    assert z.shape == (2, 256) and torch.isfinite(z).all()


def test_pretrain_checkpoint_loads_strictly_into_the_encoder(tmp_path):
    """A file in the pretrain/train.py model format (``module.`` keys) loads strictly and gives
    the trained tower's features; a file from another variant is refused."""
    torch.manual_seed(2)
    model = egohod.create_model("egovideo_small")
    with torch.no_grad():
        model.visual.temporal_embedding.normal_()  # differ from any fresh initialisation
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "step": 1,
                "model_name": "egovideo_small", "input_spec": model.input_spec.to_dict(),
                "model_config": model.cfg.to_dict()}, path)
    enc = egohod.load_encoder("egovideo_small", checkpoint=str(path))
    assert not enc.weights.startswith("random")
    clip = torch.randn(1, 3, 4, 112, 112)
    with torch.no_grad():
        assert torch.allclose(enc.visual(clip), model.visual(clip), atol=1e-5)
    with pytest.raises(Exception, match="egovideo_tiny|shape|size"):
        egohod.load_encoder("egovideo_tiny", checkpoint=str(path))


def test_encoder_config_file_names_the_variant_and_no_official_weights():
    from pathlib import Path

    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[2] / "configs" / "encoder" / "egovideo_small.yaml"
    cfg = OmegaConf.load(path)
    assert set(cfg.keys()) == {"name", "checkpoint", "num_frames"}
    assert cfg.name == "egovideo_small" and cfg.checkpoint is None and cfg.num_frames == 1
    assert "NO OFFICIAL WEIGHTS" in path.read_text()
