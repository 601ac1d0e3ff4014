"""Baseline frozen encoders (egohod/models/baselines.py): upstream key layouts load strictly and
reproduce the source weights' outputs, wrong files are clear errors, frames are stacked."""
import hashlib

import pytest
import torch

import egohod
from egohod.models.checkpoint_io import CheckpointError


def _frames(b=1, t=None, size=40):
    g = torch.Generator().manual_seed(0)
    shape = (b, size, size + 8, 3) if t is None else (b, t, size, size + 8, 3)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def test_registered_with_input_specs():
    names = egohod.list_encoders()
    for n in ("r3m", "clip", "mvp", "vc1", "dinov2"):
        assert n in names
    assert egohod.get_input_spec("r3m").embed_dim == 2048
    assert egohod.get_input_spec("clip").mean[0] == pytest.approx(0.48145466)
    assert egohod.get_input_spec("dinov2").mean[0] == pytest.approx(0.485)


def test_r3m_loads_the_upstream_layout(tmp_path):
    torch.manual_seed(0)
    src = egohod.load_encoder("r3m")
    assert src.weights == "random:seed=0" and not src.training
    assert all(not p.requires_grad for p in src.parameters())
    x = _frames()
    y = src(x)
    assert y.shape == (1, 2048) and y.dtype == torch.float32
    # R3M's file: {'r3m': DataParallel state dict with convnet + language heads}
    sd = {f"module.convnet.{k}": v for k, v in src.backbone.state_dict().items()}
    sd["module.lang_enc.weight"] = torch.zeros(3)
    sd["module.lang_rew.0.weight"] = torch.zeros(3)
    path = tmp_path / "model.pt"
    torch.save({"r3m": sd, "optimizer": {}}, path)
    enc = egohod.load_encoder("r3m", checkpoint=path)
    assert enc.weights == hashlib.sha256(path.read_bytes()).hexdigest()
    torch.testing.assert_close(enc(x), y)
    # frame stacking: 2 frames -> two 2048-d embeddings side by side
    enc2 = egohod.load_encoder("r3m", checkpoint=path, num_frames=2)
    assert enc2.embed_dim == 4096 and enc2.input_spec.num_frames == 2
    y2 = enc2(torch.stack([x, x.flip(1)], 1))
    torch.testing.assert_close(y2[:, :2048], y)
    torch.testing.assert_close(y2[:, 2048:], src(x.flip(1)))
    with pytest.raises(ValueError, match="expected 2 frames per clip, got 3"):
        enc2(_frames(t=3))
    with pytest.raises(TypeError, match="uint8"):
        enc(x.float())


def test_r3m_rejects_another_network(tmp_path):
    path = tmp_path / "wrong.pt"
    torch.save({"r3m": {"module.convnet.conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    with pytest.raises(CheckpointError, match=r"does not match encoder 'r3m'.*missing key"):
        egohod.load_encoder("r3m", checkpoint=path)


def test_mvp_loads_an_mae_checkpoint_and_ignores_the_decoder(tmp_path):
    torch.manual_seed(0)
    src = egohod.load_encoder("mvp")
    x = _frames()
    y = src(x)
    assert y.shape == (1, 768)
    sd = dict(src.backbone.state_dict())
    sd.update({"mask_token": torch.zeros(1, 1, 512), "decoder_embed.weight": torch.zeros(512, 768),
               "decoder_blocks.0.norm1.weight": torch.zeros(512)})
    path = tmp_path / "mae.pth"
    torch.save({"model": sd, "epoch": 3}, path)
    torch.testing.assert_close(egohod.load_encoder("mvp", checkpoint=path)(x), y)
    sd.pop("norm.weight")
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match=r"does not match encoder 'mvp'.*norm.weight"):
        egohod.load_encoder("mvp", checkpoint=path)


@pytest.mark.slow
def test_clip_and_dinov2_upstream_layouts(tmp_path):
    torch.manual_seed(0)
    x = _frames()
    clip = egohod.load_encoder("clip")
    y = clip(x)
    assert y.shape == (1, 512)
    sd = {f"visual.{k}": v for k, v in clip.backbone.state_dict().items()}
    sd["token_embedding.weight"] = torch.zeros(4, 4)  # text tower keys are not the encoder's
    torch.save({"state_dict": sd}, tmp_path / "clip.pt")
    torch.testing.assert_close(egohod.load_encoder("clip", checkpoint=tmp_path / "clip.pt")(x), y)
    dino = egohod.load_encoder("dinov2")
    sd = dict(dino.backbone.state_dict())
    sd["pos_embed"] = torch.randn(1, 37 * 37 + 1, 768)  # the official 518-px grid is resampled to 16x16
    sd["mask_token"] = torch.zeros(1, 768)
    torch.save(sd, tmp_path / "dinov2_vitb14_pretrain.pth")
    enc = egohod.load_encoder("dinov2", checkpoint=tmp_path / "dinov2_vitb14_pretrain.pth")
    assert enc(x).shape == (1, 768)
    assert enc.backbone.pos_embed.shape == (1, 257, 768)
