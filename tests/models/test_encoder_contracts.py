"""load_encoder: frozen eval module, uint8 in, [B, embed_dim] out, self-preprocessing, errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import egohod


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    return egohod.load_encoder("egovideo_tiny")


def frames(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)


def test_frozen_attributes(enc):
    assert not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    assert (enc.embed_dim, enc.num_frames, enc.input_spec.image_size) == (32, 4, 32)
    assert enc.weights == "random:seed=0"
    enc.train()
    assert not enc.training  # stays frozen


@pytest.mark.parametrize("h,w", [(32, 32), (48, 80), (120, 40), (17, 23)])
def test_any_size_uint8_clips(enc, h, w):
    z = enc(frames(3, 4, h, w, 3))
    assert z.shape == (3, 32) and z.dtype == torch.float32 and torch.isfinite(z).all()


def test_single_frame_is_repeated(enc):
    x = frames(2, 50, 60, 3)
    torch.testing.assert_close(enc(x), enc(x[:, None].repeat(1, 4, 1, 1, 1)))


def test_numpy_input_and_matches_manual_pipeline(enc):
    x = frames(2, 4, 40, 64, 3, seed=3)
    z = enc(x.numpy())
    # manual: resize short side to 32 (bicubic, antialias), centre crop 32, CLIP normalise
    v = x.reshape(8, 40, 64, 3).permute(0, 3, 1, 2).float() / 255
    v = F.interpolate(v, size=(32, 51), mode="bicubic", align_corners=False, antialias=True)
    v = v[..., :, 10:42]
    mean = torch.tensor(enc.input_spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(enc.input_spec.std).view(1, 3, 1, 1)
    v = ((v - mean) / std).reshape(2, 4, 3, 32, 32).permute(0, 2, 1, 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(z, enc.visual(v), atol=1e-5, rtol=1e-5)


def test_transforms_and_encoder_agree(enc):
    x = frames(4, 45, 70, 3, seed=4)
    tf = egohod.create_transforms("egovideo_tiny")
    with torch.no_grad():
        torch.testing.assert_close(enc(x[None]), enc.visual(tf(x)[None]), atol=1e-5, rtol=1e-5)


def test_bad_inputs_raise_clear_errors(enc):
    with pytest.raises(TypeError, match="uint8"):
        enc(torch.rand(2, 4, 32, 32, 3))
    with pytest.raises(TypeError, match="uint8.*float64"):
        enc(np.zeros((2, 4, 32, 32, 3)))
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        enc([[0]])
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\] or \[B, H, W, 3\]"):
        enc(frames(32, 32, 3))
    with pytest.raises(ValueError, match="3 channels last"):
        enc(frames(2, 4, 3, 32, 32))
    with pytest.raises(ValueError, match="expected 4 frames per clip, got 6.*num_frames=6"):
        enc(frames(2, 6, 32, 32, 3))


def test_num_frames_option():
    enc8 = egohod.load_encoder("egovideo_tiny", num_frames=8)
    assert enc8.num_frames == 8 and enc8.input_spec.num_frames == 8
    assert enc8(frames(1, 8, 32, 32, 3)).shape == (1, 32)


def test_token_features_from_uint8(enc):
    x = frames(2, 4, 40, 40, 3, seed=9)
    feats = enc.forward_features(x)
    assert feats.shape == (2, 1 + 4 * 2 * 2, 64)
    final, inter = enc.forward_intermediates(x, indices=1)
    torch.testing.assert_close(final, feats)
    assert len(inter) == 1 and inter[0].shape == feats.shape
    with torch.no_grad():
        torch.testing.assert_close(enc.visual.forward_head(feats), enc(x))
