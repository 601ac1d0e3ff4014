"""Checkpoint folders, RNG capture, optimizer groups, LR schedule, config validation, launcher env."""
import os
import random

import numpy as np
import pytest
import torch

from pretrain.checkpointing import capture_rng, find_last, restore_rng, save_checkpoint
from pretrain.config import OptimConfig, PretrainConfig, validate
from pretrain.distributed import _first_slurm_host, launcher_env
from pretrain.optim import build_optimizer, lr_at


def _save(out, step):
    return save_checkpoint(out, step, {"state_dict": {"module.w": torch.full((2,), float(step))}},
                           {"format": "egohod-pretrain-v1", "position": {"step": step}}, f"step: {step}\n")


def test_checkpoint_folders_and_last_pointer(tmp_path):
    _save(tmp_path, 5)
    _save(tmp_path, 10)
    ck = tmp_path / "checkpoints"
    assert os.readlink(ck / "last") == "10"
    assert sorted(p.name for p in ck.iterdir()) == ["10", "5", "last"]
    assert set(p.name for p in (ck / "10").iterdir()) == {"model.pt", "train_state.pt", "config.yaml"}
    assert find_last(tmp_path) == (ck / "10").resolve()
    # re-saving a step replaces it atomically
    _save(tmp_path, 10)
    assert torch.load(ck / "10" / "model.pt", weights_only=True)["state_dict"]["module.w"][0] == 10


def test_find_last_ignores_partial_checkpoints(tmp_path):
    _save(tmp_path, 4)
    ck = tmp_path / "checkpoints"
    (ck / ".8.tmp123").mkdir()  # a write killed midway
    (ck / ".8.tmp123" / "model.pt").write_bytes(b"partial")
    (ck / "12").mkdir()  # a folder without its files
    assert find_last(tmp_path) == (ck / "4").resolve()
    (ck / "last").unlink()  # pointer lost: fall back to the highest complete step
    assert find_last(tmp_path) == ck / "4"
    assert find_last(tmp_path / "elsewhere") is None


def test_rng_capture_restore_roundtrip(tmp_path):
    state = capture_rng()
    torch.save(state, tmp_path / "rng.pt")
    a = (random.random(), float(np.random.rand()), torch.rand(3))
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    b = (random.random(), float(np.random.rand()), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_optimizer_no_decay_on_bias_and_norm():
    import egohod

    m = egohod.create_model("egovideo_tiny")
    m.set_trainable("cotrain")
    opt = build_optimizer(m, OptimConfig(weight_decay=0.05))
    names = {id(p): n for n, p in m.named_parameters()}
    decay = [names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]]
    no_decay = [names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]]
    assert "visual.conv1.weight" in decay and "textual.text_projection" in decay
    assert "visual.ln_pre.weight" in no_decay and "visual.transformer.resblocks.0.attn.in_proj_bias" in no_decay
    assert not any(n.endswith(".bias") or ".ln_" in n for n in decay)
    assert "logit_scale" not in decay + no_decay
    m.set_trainable("adapter")
    opt = build_optimizer(m, OptimConfig())
    trained = {names[id(p)] for g in opt.param_groups for p in g["params"]}
    assert "visual.conv1.weight" not in trained and "slowfast_projection" in trained


def test_lr_schedule():
    c = OptimConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr=0.1)
    assert [lr_at(s, c, 14) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, c, 14) == pytest.approx(1.0) and lr_at(9, c, 14) == pytest.approx(0.55)
    assert lr_at(14, c, 14) == pytest.approx(0.1) and lr_at(99, c, 14) == pytest.approx(0.1)
    assert lr_at(50, OptimConfig(lr=3e-5), 10) == 3e-5


def _cfg(**data):
    c = PretrainConfig()
    c.data.csv, c.data.video_root = "x.csv", "videos"
    for k, v in data.items():
        setattr(c.data, k, v)
    return c


def test_config_validation_names_the_key():
    validate(_cfg())
    with pytest.raises(ValueError, match="data.slow_frames"):
        validate(_cfg(slow_frames=0))
    c = _cfg()
    c.data.ego4d_json = "n.json"
    with pytest.raises(ValueError, match="exactly one of data.csv"):
        validate(c)
    c = _cfg()
    c.train.strategy = "zero3"
    with pytest.raises(ValueError, match=r"train.strategy='zero3'"):
        validate(c)


def test_hydra_rejects_unknown_keys_and_composes_variants():
    from hydra import compose, initialize_config_dir

    from pretrain.config import register_configs

    register_configs()
    cfg_dir = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "configs" / "pretrain")
    with initialize_config_dir(cfg_dir, version_base=None):
        tiny = compose("tiny", overrides=["data.csv=a.csv", "data.video_root=v"])
        assert tiny.model.name == "egovideo_tiny" and tiny.data.slow_frames == 16
        large = compose("large")
        assert large.model.name == "egovideo_l" and large.optim.lr == 3e-5
        with pytest.raises(Exception, match="lerning_rate"):
            compose("default", overrides=["optim.lerning_rate=1"])


def test_launcher_env_torchrun_slurm_single():
    assert launcher_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == ("torchrun", 3, 8, 1)
    assert launcher_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1"}) == ("slurm", 5, 16, 1)
    assert launcher_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == ("single", 0, 1, 0)
    assert launcher_env({}) == ("single", 0, 1, 0)
    assert _first_slurm_host("gpu[07-09,12],cpu01") in ("gpu07",)
    assert _first_slurm_host("node3") == "node3"
