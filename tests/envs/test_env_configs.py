"""configs/env/*.yaml: the keys the robot schema accepts, and values the registry knows."""
import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import envs

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "env"


def _load(name):
    cfg = OmegaConf.load(CONFIG_DIR / name)
    defaults = cfg.pop("defaults", None)
    if defaults:
        base = [d for d in defaults if d != "_self_"]
        merged = OmegaConf.merge(*[_load(f"{b}.yaml") for b in base], cfg)
        return merged
    return cfg


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
def test_env_config_matches_schema_and_registry(name):
    from robot.config import EnvConfig

    cfg = _load(name)
    fields = {f.name for f in dataclasses.fields(EnvConfig)}
    assert set(cfg.keys()) <= fields, f"{name}: keys not in EnvConfig: {set(cfg) - fields}"
    assert f"{cfg.name}/{cfg.task}" in envs.list_envs()
    assert cfg.camera in envs.list_cameras()
    env = envs.make(f"{cfg.name}/{cfg.task}", camera=None, horizon=cfg.horizon,
                    kitchen_noise=cfg.kitchen_noise, joint_noise=cfg.joint_noise)
    assert env.horizon == cfg.horizon and env.sim.kitchen_noise == cfg.kitchen_noise
