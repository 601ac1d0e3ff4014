"""Strict loading of checkpoint files: wrappers, prefixes, both key layouts, safe unpickling,
and the error messages for every kind of mismatch."""
import hashlib
import re
import warnings

import numpy as np
import pytest
import torch

import egohod
from egohod.models.checkpoint_io import CheckpointError, read_checkpoint

FLASH = {"attn.in_proj_weight": "attn.Wqkv.weight", "attn.in_proj_bias": "attn.Wqkv.bias",
         "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."}


def to_flash(sd):
    out = {}
    for k, v in sd.items():
        if k.startswith("visual.transformer.resblocks."):
            for a, b in FLASH.items():
                k = k.replace(a, b)
        out[k] = v
    return out


def save(path, sd, wrap=True, extra=True):
    obj = {f"module.{k}": v for k, v in sd.items()}
    if wrap:
        obj = {"epoch": 3, "state_dict": obj}
        if extra:
            from omegaconf import OmegaConf

            obj["args"] = OmegaConf.create({"model": {"name": "CLIP_VITB16"}, "lr": 4e-5, "frames": [4, 16]})
            obj["best"] = np.float32(0.5)
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def tiny_sd():
    torch.manual_seed(1)
    m = egohod.create_model("egovideo_tiny")
    with torch.no_grad():
        for p in m.parameters():  # make adapters non-trivial so a wrong load would show
            p.add_(torch.randn_like(p) * 0.02)
    return m, {k: v.clone() for k, v in m.state_dict().items()}


def _outputs(m):
    torch.manual_seed(5)
    v, t = torch.randn(2, 3, 4, 32, 32), torch.randint(1, 49000, (2, 77))
    s = torch.randn(2, 3, 16, 32, 32)
    with torch.no_grad():
        return m.encode_video(v), m.encode_text(t), m.encode_video_dual(v, s)


@pytest.mark.parametrize("layout", ["plain", "flash"])
@pytest.mark.parametrize("wrap", [True, False])
def test_roundtrip_both_layouts_and_wrappers(tiny_sd, tmp_path, layout, wrap):
    m, sd = tiny_sd
    path = save(tmp_path / "c.pt", to_flash(sd) if layout == "flash" else sd, wrap=wrap)
    loaded = egohod.create_model("egovideo_tiny", checkpoint=path)
    for a, b in zip(_outputs(m.eval()), _outputs(loaded.eval())):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded.weights == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.visual.has_adapter


def test_unused_upstream_adapter_keys_are_accepted(tiny_sd, tmp_path):
    m, sd = tiny_sd
    extra = dict(sd)
    extra["visual.transformer.resblocks.0.adapter_2.gamma"] = torch.full((1,), 7.0)
    extra["visual.transformer.resblocks.1.adapter.conv2d.weight"] = torch.ones(384, 384, 3, 3)
    extra["visual.transformer.resblocks.1.adapter.conv2d.bias"] = torch.ones(384)
    loaded = egohod.create_model("egovideo_tiny", checkpoint=save(tmp_path / "c.pt", extra))
    # dropped, not loaded anywhere: the model is exactly the one without those keys
    for a, b in zip(_outputs(m.eval()), _outputs(loaded.eval())):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded.fresh_init_keys == [] and set(loaded.state_dict()) == set(sd)
    # only those upstream modules: a near-miss name is still an unexpected key
    for key in ("visual.transformer.resblocks.0.adapter_3.gamma", "visual.transformer.resblocks.1.adapter.conv3d.bias",
                "visual.adapter_2.gamma"):
        with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): " + re.escape(key)):
            egohod.create_model("egovideo_tiny", checkpoint=save(tmp_path / "x.pt", dict(sd, **{key: torch.ones(1)})))


@pytest.mark.parametrize("prefix", ["module.module.", "module._orig_mod.", "_orig_mod.module.",
                                    "module._orig_mod.module."])
def test_nested_wrapper_prefixes_are_all_stripped(tiny_sd, tmp_path, prefix):
    # DataParallel around DDP, torch.compile inside DDP, ...: every layer of prefix goes
    m, sd = tiny_sd
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": {prefix + k: v for k, v in sd.items()}}, path)
    loaded = egohod.create_model("egovideo_tiny", checkpoint=path)
    assert set(read_checkpoint(path)) == set(sd)
    for a, b in zip(_outputs(m.eval()), _outputs(loaded.eval())):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unexpected_key_is_listed(tiny_sd, tmp_path):
    _, sd = tiny_sd
    sd = dict(sd, **{"visual.extra_head.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): visual\.extra_head\.weight"):
        egohod.create_model("egovideo_tiny", checkpoint=save(tmp_path / "c.pt", sd))


def test_missing_key_is_listed(tiny_sd, tmp_path):
    _, sd = tiny_sd
    sd = {k: v for k, v in sd.items() if k != "visual.ln_post.bias"}
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): visual\.ln_post\.bias") as e:
        egohod.create_model("egovideo_tiny", checkpoint=save(tmp_path / "c.pt", sd))
    assert "c.pt" in str(e.value) and "egovideo_tiny" in str(e.value)


def test_shape_mismatch_names_key_expected_and_got(tiny_sd, tmp_path):
    _, sd = tiny_sd
    sd = dict(sd, **{"visual.image_projection": torch.zeros(64, 16)})
    with pytest.raises(CheckpointError, match=re.escape("visual.image_projection: expected (64, 32), got (64, 16)")):
        egohod.create_model("egovideo_tiny", checkpoint=save(tmp_path / "c.pt", sd))


def test_wrong_variant_gets_a_hint(tmp_path):
    with torch.device("meta"):
        b = egohod.create_model("egovideo_b", adapter=False)
    sd = {k: torch.zeros(v.shape) if k.startswith("visual.conv1") or k == "visual.class_embedding" else torch.zeros(1)
          for k, v in b.state_dict().items()}
    with pytest.raises(CheckpointError, match="looks like a checkpoint of egovideo_b, not egovideo_tiny"):
        egohod.create_model("egovideo_tiny", checkpoint=save(tmp_path / "b.pt", sd, extra=False))


def test_truncated_file_names_the_file(tiny_sd, tmp_path):
    _, sd = tiny_sd
    path = save(tmp_path / "full.pt", sd)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt is truncated or corrupt"):
        egohod.create_model("egovideo_tiny", checkpoint=cut)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        read_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_checkpoint(tmp_path / "nope.pt")


class NotAllowed:
    pass


def test_unsafe_pickle_refused_unless_trusted(tiny_sd, tmp_path):
    _, sd = tiny_sd
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": sd, "obj": NotAllowed()}, path)
    with pytest.raises(CheckpointError, match=r"refused: .*NotAllowed.*outside egohod's safe-loading allowlist.*trust_pickle=true"):
        read_checkpoint(path)
    assert "visual.conv1.weight" in read_checkpoint(path, trust_pickle=True)


def test_non_tensor_entries_rejected(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"a": torch.zeros(1), "b": "text"}, path)
    with pytest.raises(CheckpointError, match=r"not tensors: \['b'\]"):
        read_checkpoint(path)


def test_adapter_choice_follows_checkpoint(tiny_sd, tmp_path):
    _, sd = tiny_sd
    no_adapter = {k: v for k, v in sd.items() if ".adapter." not in k and k != "slowfast_projection"}
    path = save(tmp_path / "noad.pt", no_adapter)
    assert not egohod.create_model("egovideo_tiny", checkpoint=path).visual.has_adapter
    with pytest.warns(UserWarning, match="no motion-adapter weights"):
        m = egohod.create_model("egovideo_tiny", checkpoint=path, adapter=True)
    assert m.visual.has_adapter and "slowfast_projection" in m.fresh_init_keys
    up = m.visual.transformer.resblocks[0].adapter.up_proj.weight
    assert float(up.detach().abs().max()) == 0.0  # identity initialisation kept
    with pytest.raises(CheckpointError, match="unexpected key.*adapter"):
        egohod.create_model("egovideo_tiny", checkpoint=save(tmp_path / "ad.pt", sd), adapter=False)


def _linear_resample_frames(te: np.ndarray, n: int) -> np.ndarray:
    """Reference: linear interpolation along frames at pixel centres (``align_corners=False``):
    output frame ``i`` reads source position ``(i + 0.5) * T / n - 0.5``, clamped to the ends."""
    t = te.shape[0]
    x = np.clip((np.arange(n) + 0.5) * t / n - 0.5, 0, t - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = (x - lo)[:, None]
    return te[lo] * (1 - w) + te[hi] * w


def test_other_frame_count_interpolates_temporal_embedding(tiny_sd, tmp_path):
    _, sd = tiny_sd
    te = sd["visual.temporal_embedding"].clone()
    assert te.shape == (4, 64)
    te[:, 0] = torch.arange(4.0)  # a ramp over frames: values known by hand
    path = save(tmp_path / "c.pt", dict(sd, **{"visual.temporal_embedding": te}))
    m8 = egohod.create_model("egovideo_tiny", checkpoint=path, num_frames=8)
    got = m8.visual.temporal_embedding.detach()
    assert got.shape == (8, 64) and m8.input_spec.num_frames == 8
    # 8 from 4 frames: source positions -0.25 (clamped), 0.25, 0.75, ..., 3.25 (clamped)
    np.testing.assert_allclose(got[:, 0].numpy(), [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3], atol=1e-6)
    np.testing.assert_allclose(got.numpy(), _linear_resample_frames(te.numpy().astype(np.float64), 8), atol=1e-6)
    m2 = egohod.create_model("egovideo_tiny", checkpoint=path, num_frames=2)
    np.testing.assert_allclose(m2.visual.temporal_embedding.detach()[:, 0].numpy(), [0.5, 2.5], atol=1e-6)
    np.testing.assert_allclose(m2.visual.temporal_embedding.detach().numpy(),
                               _linear_resample_frames(te.numpy().astype(np.float64), 2), atol=1e-6)


def test_safetensors_vision_only_file_loads_with_warning(tiny_sd, tmp_path):
    from safetensors.torch import save_file

    m, sd = tiny_sd
    vis = {k: v.contiguous() for k, v in sd.items() if k.startswith("visual.")}
    save_file(vis, str(tmp_path / "v.safetensors"))
    with pytest.warns(UserWarning, match="only the vision tower"):
        full = egohod.create_model("egovideo_tiny", checkpoint=tmp_path / "v.safetensors")
    assert "textual.token_embedding.weight" in full.fresh_init_keys
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the frozen encoder does not warn: it never uses the text tower
        enc = egohod.load_encoder("egovideo_tiny", checkpoint=tmp_path / "v.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(enc.visual(torch.ones(1, 3, 4, 32, 32)), m.eval().encode_video(torch.ones(1, 3, 4, 32, 32)))


def test_clip_length_follows_the_checkpoint(tiny_sd, tmp_path):
    from egohod.models.egovideo import interpolate_temporal_embedding

    _, sd = tiny_sd
    sd16 = dict(sd, **{"visual.temporal_embedding": interpolate_temporal_embedding(sd["visual.temporal_embedding"], 16)})
    path = save(tmp_path / "t16.pt", sd16)
    m = egohod.create_model("egovideo_tiny", checkpoint=path)
    assert m.input_spec.num_frames == 16 and m.visual.temporal_embedding.shape == (16, 64)
    enc = egohod.load_encoder("egovideo_tiny", checkpoint=path)
    assert enc.num_frames == 16
    assert egohod.create_model("egovideo_tiny", checkpoint=path, num_frames=4).input_spec.num_frames == 4
