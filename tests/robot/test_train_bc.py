"""End to end on tiny data: train_bc (Hydra config) -> results.json, checkpoints, plot, video ->
resume -> eval_bc; and the bad-input errors that must come before any training."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32


def _write_tiny_demos(path: Path, n=2, T=12, cameras=("left",)):
    from robot.demos import Episode, kitchen_env_args, write_demos

    rng = np.random.default_rng(0)
    eps = []
    for i in range(n):
        obs = {f"rgb_{c}": rng.integers(0, 255, (T, SIZE, SIZE, 3), dtype=np.uint8) for c in cameras}
        obs["proprio"] = rng.standard_normal((T, 9)).astype(np.float32)
        obs["object_state"] = rng.standard_normal((T, 30)).astype(np.float32)
        eps.append(Episode(obs=obs, actions=rng.uniform(-1, 1, (T, 9)).astype(np.float32), rewards=np.zeros(T),
                           dones=np.eye(T)[-1], states=np.zeros((T, 59)), seed=i, task="microwave"))
    write_demos(path, eps, kitchen_env_args("kitchen/microwave", list(cameras), SIZE))
    return path


@pytest.fixture(scope="module")
def tiny_demos(tmp_path_factory):
    return _write_tiny_demos(tmp_path_factory.mktemp("demos") / "tiny.hdf5")


def compose(overrides):
    from hydra import compose as hy_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from robot.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hy_compose("robot/train_bc", overrides=overrides)


def _overrides(tmp_path, demos, **extra):
    o = {"encoder": "egovideo_tiny", "encoder.frames": 2, "env.image_size": SIZE, "env.horizon": 6,
         "demos.path": str(demos), "demos.num": 2, "train.steps": 4, "train.batch_size": 8, "eval.every": 2,
         "eval.episodes": 2, "eval.num_envs": 1, "eval.videos": 1, "wandb.mode": "disabled",
         "cache.dir": str(tmp_path / "cache"), "out_dir": str(tmp_path / "run")}
    o.update(extra)
    return [f"{k}={v}" for k, v in o.items()]


def test_defaults_are_the_classic_protocol_cell():
    cfg = compose([])
    assert (cfg.env.task, cfg.env.camera, cfg.demos.num, cfg.train.steps, cfg.train.batch_size) == \
        ("microwave", "left", 25, 20000, 32)
    assert (cfg.train.lr, cfg.eval.every, cfg.eval.episodes, cfg.env.horizon) == (1e-3, 1000, 50, 50)
    assert cfg.policy.name == "mlp" and list(cfg.policy.hidden) == [256, 256] and cfg.policy.batchnorm
    assert cfg.encoder.name == "egovideo_b" and cfg.demos.path is None
    assert str(cfg.out_dir).startswith("outputs/")
    with pytest.raises(Exception, match="bogus"):
        compose(["encoder.bogus=1"])


def test_train_resume_eval(tmp_path, tiny_demos):
    from robot.run_bc import evaluate_checkpoint, train_bc

    torch.manual_seed(0)
    res = train_bc(compose(_overrides(tmp_path, tiny_demos)), tmp_path / "run")
    run = tmp_path / "run"
    saved = json.loads((run / "results.json").read_text())
    assert saved == json.loads(json.dumps(res))
    assert saved["complete"] and saved["label"] == "egovideo_tiny (RANDOM WEIGHTS, seed 0)"
    assert saved["encoder"]["name"] == "egovideo_tiny" and saved["encoder"]["weights"] == "random:seed=0"
    assert saved["encoder"]["random_weights"] and saved["encoder"]["frames"] == 2
    assert [e["step"] for e in saved["evals"]] == [2, 4]
    for e in saved["evals"]:
        assert [ep["seed"] for ep in e["episodes"]] == [100000, 100001]
        assert all(set(ep) == {"seed", "success", "steps", "success_step", "solved_steps"} for ep in e["episodes"])
        assert all(ep["steps"] == 6 for ep in e["episodes"])
        assert e["success_rate"] == np.mean([ep["success"] for ep in e["episodes"]])
    assert saved["best"]["success_rate"] == max(e["success_rate"] for e in saved["evals"])
    assert saved["final"]["step"] == 4 and saved["demos"]["num"] == 2 and len(saved["demos"]["sha256"]) == 64
    assert saved["timing"]["feature_cache_hit"] is False
    assert (run / "config.yaml").is_file() and (run / "success_curve.png").stat().st_size > 1000
    assert (run / "checkpoints" / "last").resolve().name == "0000004"
    videos = list((run / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].name.startswith("seed100000_")

    ckpt = torch.load(run / "checkpoints" / "last" / "policy.pt", weights_only=False)
    assert ckpt["step"] == 4 and ckpt["policy"]["name"] == "mlp"
    assert ckpt["shapes"] == {"feature_dim": 32, "proprio_dim": 9, "action_dim": 9}
    assert ckpt["normalization"]["input_mean"].shape == (41,)
    assert ckpt["config"]["env"]["task"] == "microwave" and ckpt["encoder"]["weights"] == "random:seed=0"
    assert {"optimizer", "rng", "state_dict"} <= set(ckpt)

    # resume: the same out_dir with more steps continues from step 4 and reuses the cached features
    res2 = train_bc(compose(_overrides(tmp_path, tiny_demos, **{"train.steps": 6})), run)
    assert [e["step"] for e in res2["evals"]] == [2, 4, 6]
    assert res2["evals"][:2] == saved["evals"]
    assert res2["timing"]["feature_cache_hit"] is True
    # resuming with another encoder setting is refused
    with pytest.raises(ValueError, match="cannot resume .* encoder frames=2.*1"):
        train_bc(compose(_overrides(tmp_path, tiny_demos, **{"train.steps": 8, "encoder.frames": 1})), run)

    # eval_bc: re-evaluate the last checkpoint with more episodes
    from robot.config import EvalConfig

    ev = evaluate_checkpoint(run / "checkpoints" / "last", EvalConfig(episodes=3, num_envs=1, videos=0),
                             "cpu", out_dir=tmp_path / "eval")
    assert ev["evals"][0]["step"] == 6 and len(ev["evals"][0]["episodes"]) == 3
    assert ev["label"] == "egovideo_tiny (RANDOM WEIGHTS, seed 0)"
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["final"]["step"] == 6


def _expect_error_before_training(tmp_path, overrides, exc, match):
    from robot.run_bc import train_bc

    with pytest.raises(exc, match=match):
        train_bc(compose(overrides), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.npz"))


def test_missing_demos_file(tmp_path, tiny_demos):
    _expect_error_before_training(tmp_path, _overrides(tmp_path, tiny_demos, **{"demos.path": tmp_path / "nope.hdf5"}),
                                  FileNotFoundError, r"demos.path=.*nope.hdf5.*demo file not found")


def test_camera_not_in_demo_file(tmp_path, tiny_demos):
    _expect_error_before_training(tmp_path, _overrides(tmp_path, tiny_demos, **{"env.camera": "right"}),
                                  ValueError, r"camera 'right' is not in demo file .*cameras in the file: left")


def test_encoder_checkpoint_mismatch(tmp_path, tiny_demos):
    bad = tmp_path / "r3m.pt"
    torch.save({"r3m": {"module.convnet.conv1.weight": torch.zeros(64, 3, 7, 7)}}, bad)
    _expect_error_before_training(tmp_path, _overrides(tmp_path, tiny_demos, **{"encoder.checkpoint": bad}),
                                  ValueError, r"encoder/checkpoint mismatch.*egovideo_tiny")


def test_too_few_demos_and_bad_policy_option(tmp_path, tiny_demos):
    _expect_error_before_training(tmp_path, _overrides(tmp_path, tiny_demos, **{"demos.num": 5}),
                                  ValueError, r"demos.num=5 but demo file .* holds only 2 demos")
    _expect_error_before_training(tmp_path, _overrides(tmp_path, tiny_demos, **{"+policy.width": 3}),
                                  ValueError, r"unknown option\(s\) \['width'\]")


def test_cli_reports_bad_input(tmp_path, tiny_demos):
    cmd = [sys.executable, str(ROOT / "robot" / "train_bc.py")] + _overrides(
        tmp_path, tiny_demos, **{"env.camera": "right"})
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode != 0
    assert "camera 'right' is not in demo file" in p.stderr + p.stdout
