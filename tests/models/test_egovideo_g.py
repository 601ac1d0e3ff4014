"""EgoVideo-G: the 1B configuration (built on the meta device), and a tiny configuration of the
same classes for forward, padding invariance and the official G key layout."""
import pytest
import torch

import egohod
from egohod.models.checkpoint_io import CheckpointError

TINY_G = dict(image_size=28, vision_width=64, vision_layers=2, vision_heads=4, vision_mlp=128, pool_dim=48,
              text_width=32, text_heads=4, text_layers=3, text_fusion_layer=2, text_mlp=64, vocab_size=200,
              max_positions=40, embed_dim=16)


def test_full_g_architecture_on_meta():
    with torch.device("meta"):
        g = egohod.create_model("egovideo_g")
    sd = g.state_dict()
    assert len(g.visual.blocks) == 40 and len(g.textual.encoder.layer) == 19  # text mode: fusion_layer 19
    assert tuple(sd["visual.patch_embed.proj.weight"].shape) == (1408, 3, 1, 14, 14)
    assert tuple(sd["visual.pos_embed"].shape) == (1, 1 + 4 * 16 * 16, 1408)
    assert tuple(sd["visual.blocks.0.mlp.fc1.weight"].shape) == (6144, 1408)
    assert tuple(sd["visual.blocks.0.attn.qkv.weight"].shape) == (3 * 1408, 1408)
    assert tuple(sd["visual.clip_projector.cross_attn.proj.weight"].shape) == (768, 1408)
    assert tuple(sd["visual.image_projection"].shape) == (768, 512)
    assert tuple(sd["textual.embeddings.word_embeddings.weight"].shape) == (30522, 1024)
    assert tuple(sd["textual.text_projection"].shape) == (1024, 512)
    n_vis = sum(p.numel() for p in g.visual.parameters())
    assert 1.0e9 < n_vis < 1.05e9


@pytest.fixture(scope="module")
def tiny_g():
    torch.manual_seed(0)
    return egohod.create_model("egovideo_g", **TINY_G).eval()


def test_tiny_g_forward_and_padding_invariance(tiny_g):
    tokens = torch.tensor([[101, 5, 6, 102, 0, 0], [101, 7, 102, 0, 0, 0]])
    out = tiny_g(torch.randn(2, 3, 4, 28, 28), tokens)
    assert out["video"].shape == (2, 16) and out["text"].shape == (2, 16)
    with torch.no_grad():
        torch.testing.assert_close(tiny_g.encode_text(tokens), tiny_g.encode_text(tokens[:, :4]))
        assert tiny_g.encode_video(torch.randn(1, 3, 8, 28, 28)).shape == (1, 16)
    with pytest.raises(NotImplementedError, match="no motion adapter"):
        tiny_g.encode_video_dual(None, None)


def test_official_g_layout_loads_strictly(tiny_g, tmp_path):
    sd = {k: v.clone() for k, v in tiny_g.state_dict().items() if k != "logit_scale"}
    official = {}
    for k, v in sd.items():  # projections at the top level, as in the released G files
        official[{"visual.image_projection": "image_projection",
                  "textual.text_projection": "text_projection"}.get(k, k)] = v
    official["visual.clip_pos_embed"] = torch.zeros_like(sd["visual.pos_embed"])
    official["visual.clip_decoder.0.head.weight"] = torch.zeros(8, 64)
    official["visual.final_clip_decoder.norm.weight"] = torch.zeros(8)
    official["textual.encoder.layer.2.crossattention.self.key.weight"] = torch.zeros(32, 64)
    official["textual.pooler.dense.weight"] = torch.zeros(32, 32)
    path = tmp_path / "g.pth"
    torch.save({f"module.{k}": v for k, v in official.items()}, path)
    g = egohod.create_model("egovideo_g", checkpoint=path, **TINY_G).eval()
    x = torch.randn(1, 3, 4, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(g.encode_video(x), tiny_g.encode_video(x))
    official["visual.blocks.9.norm1.weight"] = torch.zeros(64)
    torch.save(official, path)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): visual\.blocks\.9\.norm1\.weight"):
        egohod.create_model("egovideo_g", checkpoint=path, **TINY_G)


def test_g_encoder_uses_imagenet_normalisation():
    spec = egohod.get_input_spec("egovideo_g")
    assert spec.mean == (0.485, 0.456, 0.406) and spec.extra["tokenizer"] == "bert"


def test_g_checkpoint_for_other_frame_count_interpolates_pos_embed(tiny_g, tmp_path):
    path = tmp_path / "g4.pth"
    torch.save({"state_dict": {k: v for k, v in tiny_g.state_dict().items()}}, path)
    g8 = egohod.create_model("egovideo_g", checkpoint=path, num_frames=8, **TINY_G)
    pe4, pe8 = tiny_g.visual.pos_embed.detach(), g8.visual.pos_embed.detach()
    assert pe8.shape == (1, 1 + 8 * 4, 64)
    torch.testing.assert_close(pe8[:, 0], pe4[:, 0])
    # frame 0 of 8 sits before frame 0 of 4 (align_corners=False): clamped to it
    torch.testing.assert_close(pe8[0, 1:5], pe4[0, 1:5])
    torch.testing.assert_close(pe8[0, 5:9], 0.75 * pe4[0, 1:5] + 0.25 * pe4[0, 5:9])
