"""Registry listing, input specs and forward shapes of every EgoVideo variant."""
import pytest
import torch

import egohod
from egohod.models.egovideo import interpolate_temporal_embedding

VARIANTS = ["egovideo_b", "egovideo_l", "egovideo_g", "egovideo_tiny"]


def test_listing_has_all_variants():
    models = egohod.list_models()
    encoders = egohod.list_encoders()
    for v in VARIANTS:
        assert v in models, models
        assert v in encoders, encoders
    assert egohod.list_models("egovideo_t*") == ["egovideo_tiny"]


@pytest.mark.parametrize("name,size,frames,dim", [
    ("egovideo_b", 224, 4, 512), ("egovideo_l", 336, 4, 512), ("egovideo_g", 224, 4, 512), ("egovideo_tiny", 32, 4, 32)])
def test_input_specs(name, size, frames, dim):
    s = egohod.get_input_spec(name)
    assert (s.image_size, s.num_frames, s.embed_dim) == (size, frames, dim)
    if name == "egovideo_g":  # the G evaluation code normalises with ImageNet statistics
        assert s.mean == pytest.approx((0.485, 0.456, 0.406)) and s.std == pytest.approx((0.229, 0.224, 0.225))
    else:
        assert s.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
        assert s.std == pytest.approx((0.26862954, 0.26130258, 0.27577711))


def test_unknown_model_lists_known():
    with pytest.raises(KeyError, match="egovideo_b"):
        egohod.create_model("egovideo_xl")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return egohod.create_model("egovideo_tiny").eval()


def test_tiny_forward_shapes(tiny):
    # speed: bench/encoder_throughput.py --variant egovideo_tiny (no timing in tests)
    tok = egohod.get_tokenizer("egovideo_tiny")(["#C C opens the fridge", "#C C cuts a tomato"])
    video = torch.randn(2, 3, 4, 32, 32)
    out = tiny(video, tok)
    assert out["video"].shape == (2, 32) and out["text"].shape == (2, 32)
    assert torch.allclose(out["video"].norm(dim=-1), torch.ones(2), atol=1e-5)
    assert out["logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert tiny.encode_video(video).shape == (2, 32)
    assert not torch.allclose(tiny.encode_video(video).norm(dim=-1), torch.ones(2))
    assert tiny.embed_dim == 32 and tiny.input_spec.image_size == 32


def test_tiny_attributes_and_features(tiny):
    video = torch.randn(2, 3, 4, 32, 32)
    feats = tiny.visual.forward_features(video)
    assert feats.shape == (2, 1 + 4 * 2 * 2, 64)
    final, inter = tiny.visual.forward_intermediates(video, indices=[0, -1])
    assert len(inter) == 2 and inter[0].shape == feats.shape
    torch.testing.assert_close(final, feats)
    torch.testing.assert_close(tiny.visual.forward_head(feats), tiny.encode_video(video))
    assert not tiny.logit_scale.requires_grad


def test_other_frame_count_uses_interpolated_temporal_embedding(tiny):
    with torch.no_grad():
        tiny.visual.temporal_embedding.copy_(torch.arange(4.0)[:, None].expand(4, 64))
    te8 = interpolate_temporal_embedding(tiny.visual.temporal_embedding, 8)
    # align_corners=False linear interpolation: frame i of 8 sits at (i + 0.5) / 2 - 0.5 of 4
    expect = torch.tensor([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
    torch.testing.assert_close(te8[:, 0], expect)
    assert tiny.encode_video(torch.randn(1, 3, 8, 32, 32)).shape == (1, 32)
    m16 = egohod.create_model("egovideo_tiny", num_frames=16)
    assert m16.visual.temporal_embedding.shape == (16, 64) and m16.input_spec.num_frames == 16


def test_wrong_video_shapes_raise(tiny):
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        tiny.encode_video(torch.randn(2, 4, 32, 32))
    with pytest.raises(ValueError, match="32x32"):
        tiny.encode_video(torch.randn(2, 3, 4, 64, 64))


@pytest.mark.parametrize("name,width,layers,conv1", [
    ("egovideo_b", 768, 12, (768, 768)), ("egovideo_l", 1024, 24, (1024, 588))])
def test_big_variants_build_on_meta(name, width, layers, conv1):
    with torch.device("meta"):
        m = egohod.create_model(name, adapter=False)
    sd = m.state_dict()
    assert tuple(sd["visual.conv1.weight"].shape) == conv1
    assert tuple(sd["visual.image_projection"].shape) == (width, 512)
    assert len(m.visual.transformer.resblocks) == layers
    grid = m.input_spec.image_size // (14 if name == "egovideo_l" else 16)
    assert tuple(sd["visual.positional_embedding"].shape) == (grid * grid + 1, width)
    assert tuple(sd["visual.temporal_embedding"].shape) == (4, width)
    assert tuple(sd["textual.token_embedding.weight"].shape)[0] == 49408
    assert tuple(sd["textual.positional_embedding"].shape)[0] == 77
    assert m.visual.ln_pre.eps == 1e-6 and m.textual.ln_final.eps == 1e-5


def test_import_egohod_stays_light():
    import subprocess
    import sys

    code = ("import sys, egohod; heavy = [m for m in ('open_clip', 'transformers', 'onnx', 'onnxruntime', 'timm', "
            "'egohod.models.variants') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("name", VARIANTS)
def test_encoder_config_files(name):
    from pathlib import Path

    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs" / "encoder" / f"{name}.yaml")
    assert set(cfg.keys()) == {"name", "checkpoint", "num_frames"}
    assert cfg.name == name and cfg.name in egohod.list_encoders()
    assert cfg.checkpoint is None and cfg.num_frames >= 1


@pytest.mark.parametrize("name,width", [("egovideo_b", 768), ("egovideo_l", 1024)])
def test_adapter_key_shapes_match_upstream_slowfast(name, width):
    with torch.device("meta"):
        m = egohod.create_model(name)  # no checkpoint: adapters are built
    sd = m.state_dict()
    pre = "visual.transformer.resblocks.0.adapter."
    assert tuple(sd[pre + "down_proj.weight"].shape) == (width // 2, width)
    assert tuple(sd[pre + "up_proj.weight"].shape) == (width, width // 2)
    assert tuple(sd[pre + "dwconv.weight"].shape) == (width // 2, 1, 3)
    assert tuple(sd[pre + "conv.weight"].shape) == (width // 2, width // 2, 1)
    assert tuple(sd[pre + "gamma"].shape) == (1,)
    assert tuple(sd["slowfast_projection"].shape) == (1024, 512)
    assert not any("adapter_2" in k or "conv2d" in k for k in sd)  # never run upstream: not built
