"""End to end on tiny data: train_bc (Hydra config) -> results.json, checkpoints, plot, video ->
resume -> eval_bc; and the bad-input errors that must come before any training."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32


def _write_tiny_demos(path: Path, n=2, T=12, cameras=("left",), task="microwave"):
    from robot.demos import Episode, kitchen_env_args, write_demos

    rng = np.random.default_rng(0)
    eps = []
    for i in range(n):
        obs = {f"rgb_{c}": rng.integers(0, 255, (T, SIZE, SIZE, 3), dtype=np.uint8) for c in cameras}
        obs["proprio"] = rng.standard_normal((T, 9)).astype(np.float32)
        obs["object_state"] = rng.standard_normal((T, 30)).astype(np.float32)
        eps.append(Episode(obs=obs, actions=rng.uniform(-1, 1, (T, 9)).astype(np.float32), rewards=np.zeros(T),
                           dones=np.eye(T)[-1], states=np.zeros((T, 59)), seed=i, task=task))
    write_demos(path, eps, kitchen_env_args(f"kitchen/{task}", list(cameras), SIZE))
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
    o = {"encoder": "egovideo_tiny", "encoder.num_frames": 2, "env.image_size": SIZE, "env.horizon": 6,
         "demos.path": str(demos), "demos.num": 2, "train.steps": 4, "train.batch_size": 8, "eval.every": 2,
         "eval.episodes": 2, "eval.num_envs": 1, "eval.videos": 1, "wandb.mode": "disabled",
         "cache.dir": str(tmp_path / "cache"), "out": str(tmp_path / "run")}
    o.update(extra)
    return [f"{k}={v}" for k, v in o.items()]


def test_defaults_are_the_classic_protocol_cell():
    cfg = compose([])
    assert (cfg.env.task, cfg.env.camera, cfg.demos.num, cfg.train.steps, cfg.train.batch_size) == \
        ("microwave", "left", 25, 20000, 32)
    assert (cfg.train.lr, cfg.eval.every, cfg.eval.episodes, cfg.env.horizon) == (1e-3, 1000, 50, 50)
    assert cfg.policy.name == "mlp" and list(cfg.policy.hidden) == [256, 256] and cfg.policy.batchnorm
    assert cfg.encoder.name == "egovideo_b" and cfg.demos.path is None
    assert str(cfg.out).startswith("outputs/")
    with pytest.raises(Exception, match="bogus"):
        compose(["encoder.bogus=1"])


def test_train_resume_eval(tmp_path, tiny_demos, capsys):
    from robot.run_bc import evaluate_checkpoint, train_bc

    torch.manual_seed(0)
    res = train_bc(compose(_overrides(tmp_path, tiny_demos)), tmp_path / "run")
    run = tmp_path / "run"
    console = capsys.readouterr().out  # every shown number from random weights says so
    assert "encoder egovideo_tiny: RANDOM WEIGHTS (seed 0" in console
    assert "egovideo_tiny (RANDOM WEIGHTS, seed 0): best" in console and "| RANDOM WEIGHTS |" in console
    assert not (run / ".lock").exists() and not (run / ".hydra").exists()
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

    # resume: the same out with more steps continues from step 4 and reuses the cached features
    res2 = train_bc(compose(_overrides(tmp_path, tiny_demos, **{"train.steps": 6})), run)
    assert [e["step"] for e in res2["evals"]] == [2, 4, 6]
    assert res2["evals"][:2] == saved["evals"]
    assert res2["timing"]["feature_cache_hit"] is True
    # resuming with another encoder setting is refused
    with pytest.raises(ValueError, match="cannot resume .* encoder frames=2.*1"):
        train_bc(compose(_overrides(tmp_path, tiny_demos, **{"train.steps": 8, "encoder.num_frames": 1})), run)

    # eval_bc: re-evaluate the last checkpoint with more episodes
    from robot.config import EvalConfig

    ev = evaluate_checkpoint(run / "checkpoints" / "last", EvalConfig(episodes=3, num_envs=1, videos=0),
                             "cpu", out=tmp_path / "eval")
    assert ev["evals"][0]["step"] == 6 and len(ev["evals"][0]["episodes"]) == 3
    assert ev["label"] == "egovideo_tiny (RANDOM WEIGHTS, seed 0)"
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["final"]["step"] == 6

    # eval_bc's encoder is the training one: its features equal the cached training features
    from robot.features import FeatureCache
    from robot.run_bc import encoder_from_checkpoint
    from robot.training import load_checkpoint

    enc = encoder_from_checkpoint(load_checkpoint(run / "checkpoints" / "last"), torch.device("cpu"))
    (cached,) = [np.load(f)["features"] for f in FeatureCache(tmp_path / "cache").dir.glob("*.npz")
                 if json.loads(f.with_suffix(".json").read_text())["frames"] == 2]  # not the refused frames=1 run's
    from robot.demos import read_demos

    frames = [e.obs["rgb_left"] for e in read_demos(tiny_demos, obs_keys=["rgb_left"])]
    np.testing.assert_allclose(np.concatenate([enc.encode_episode(f) for f in frames]), cached, atol=1e-5)

    # a finished folder is never restarted silently: resume=false is refused unless overwrite=true
    before = (run / "results.json").read_bytes()
    with pytest.raises(ValueError, match=r"out=.*run holds a previous run \(checkpoints up to 0000006\); "
                                         r"resume=true continues it, overwrite=true replaces it"):
        train_bc(compose(_overrides(tmp_path, tiny_demos, resume="false")), run)
    assert (run / "results.json").read_bytes() == before and not (run / ".lock").exists()
    res3 = train_bc(compose(_overrides(tmp_path, tiny_demos, resume="false", overwrite="true",
                                       **{"train.steps": 2, "eval.videos": 0, "eval.episodes": 1})), run)
    assert [e["step"] for e in res3["evals"]] == [2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["0000002", "last"]
    assert not (run / "videos").exists() and not (run / "eval").exists()


def test_encoder_seed_is_part_of_the_run(tmp_path, tiny_demos):
    """seed=1 trains on the random encoder of seed 1: its own cache entry (not seed 0's features),
    recorded in results and checkpoint, rebuilt by eval_bc."""
    from robot.run_bc import encoder_from_checkpoint, train_bc
    from robot.training import load_checkpoint

    fast = {"train.steps": 2, "eval.videos": 0, "eval.episodes": 1}
    r0 = train_bc(compose(_overrides(tmp_path, tiny_demos, out=tmp_path / "s0", **fast)), tmp_path / "s0")
    r1 = train_bc(compose(_overrides(tmp_path, tiny_demos, seed=1, out=tmp_path / "s1", **fast)), tmp_path / "s1")
    assert r0["encoder"]["weights"] == "random:seed=0" and r1["encoder"]["weights"] == "random:seed=1"
    assert r1["timing"]["feature_cache_hit"] is False and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    ckpt = load_checkpoint(tmp_path / "s1" / "checkpoints" / "last")
    assert ckpt["encoder"]["weights"] == "random:seed=1" and ckpt["encoder"]["seed"] == 1
    assert encoder_from_checkpoint(ckpt, torch.device("cpu")).info.weights == "random:seed=1"
    # encoder.seed fixes the encoder while the run seed varies: seed 0's features are reused
    r2 = train_bc(compose(_overrides(tmp_path, tiny_demos, seed=2, out=tmp_path / "s2", **fast,
                                     **{"encoder.seed": 0})), tmp_path / "s2")
    assert r2["encoder"]["weights"] == "random:seed=0" and r2["timing"]["feature_cache_hit"] is True


def test_run_folder_recorded_with_out_dir_resumes_and_evaluates(tmp_path, tiny_demos):
    """A run folder written before the setting was renamed (``out_dir`` in its config.yaml and its
    checkpoints' config) is resumed by train_bc and re-evaluated by eval_bc."""
    import yaml

    from robot.config import EvalConfig
    from robot.run_bc import evaluate_checkpoint, train_bc

    run, fast = tmp_path / "run", {"eval.videos": 0, "eval.episodes": 1}
    train_bc(compose(_overrides(tmp_path, tiny_demos, **{"train.steps": 2, **fast})), run)
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    recorded["out_dir"] = recorded.pop("out")
    (run / "config.yaml").write_text(yaml.safe_dump(recorded))
    policy_file = run / "checkpoints" / "last" / "policy.pt"
    ckpt = torch.load(policy_file, weights_only=False)
    ckpt["config"]["out_dir"] = ckpt["config"].pop("out")
    torch.save(ckpt, policy_file)

    res = train_bc(compose(_overrides(tmp_path, tiny_demos, **{"train.steps": 4, **fast})), run)
    assert [e["step"] for e in res["evals"]] == [2, 4]  # continued from step 2, not restarted
    ev = evaluate_checkpoint(run / "checkpoints" / "0000002", EvalConfig(episodes=1, num_envs=1, videos=0), "cpu")
    assert ev["evals"][0]["step"] == 2 and (run / "eval" / "0000002" / "results.json").is_file()


def test_cli_accepts_out_dir_with_a_warning(tmp_path, tiny_demos):
    """``out_dir=`` and ``encoder.frames=`` (the settings' old names) still work; a FutureWarning each
    says to use out= / encoder.num_frames=."""
    old = [o.replace("out=", "out_dir=", 1) if o.startswith("out=") else o for o in _overrides(
        tmp_path, tiny_demos, **{"train.steps": 2, "eval.videos": 0, "eval.episodes": 1})] + ["encoder.frames=1"]
    assert f"out_dir={tmp_path / 'run'}" in old
    p = subprocess.run([sys.executable, str(ROOT / "robot" / "train_bc.py")] + old, capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr.count("FutureWarning: robot/train_bc.py: out_dir= is deprecated; use out=") == 1
    assert p.stderr.count("FutureWarning: robot/train_bc.py: encoder.frames= is deprecated; use encoder.num_frames=") == 1
    assert json.loads((tmp_path / "run" / "results.json").read_text())["complete"]
    assert not (tmp_path / "outputs").exists()  # not the default folder


def _expect_error_before_training(tmp_path, overrides, exc, match):
    from robot.run_bc import train_bc

    with pytest.raises(exc, match=match):
        train_bc(compose(overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written: no config.yaml, no lock file, no folder
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.npz"))


def test_demo_file_recorded_for_another_task(tmp_path):
    demos = _write_tiny_demos(tmp_path / "light_switch.hdf5", task="light_switch")
    _expect_error_before_training(tmp_path, _overrides(tmp_path, demos), ValueError,
                                  r"recorded for task 'light_switch' \(task\) but env.task='microwave'")
    _expect_error_before_training(tmp_path, _overrides(tmp_path, demos, encoder="state"), ValueError,
                                  r"recorded for task 'light_switch'")


def test_demo_file_recorded_at_another_image_size(tmp_path):
    from robot.demos import Episode, kitchen_env_args, write_demos

    ep = Episode(obs={"rgb_left": np.zeros((4, SIZE, SIZE, 3), np.uint8), "proprio": np.zeros((4, 9), np.float32)},
                 actions=np.zeros((4, 9)), rewards=np.zeros(4), dones=np.eye(4)[-1], states=np.zeros((4, 59)))
    demos = write_demos(tmp_path / "d.hdf5", [ep, ep], kitchen_env_args("kitchen/microwave", ["left", "right"], 64))
    _expect_error_before_training(tmp_path, _overrides(tmp_path, demos), ValueError,
                                  r"recorded at image size 64 but env.image_size=32")
    _expect_error_before_training(tmp_path, _overrides(tmp_path, demos, **{"env.camera": "default"}), ValueError,
                                  r"camera 'default' is not in demo file .*cameras in the file: left, right, as recorded")


def test_truncated_demo_file_names_demos_path(tmp_path, tiny_demos):
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(tiny_demos.read_bytes()[: tiny_demos.stat().st_size // 2])
    _expect_error_before_training(tmp_path, _overrides(tmp_path, cut), ValueError,
                                  r"demos.path=.*cut.hdf5: .*cut.hdf5: cannot open the HDF5 file, it is truncated")


def test_second_run_in_a_locked_out_dir_exits_at_once(tmp_path, tiny_demos):
    from egohod.fileio import FolderLock, FolderLockedError
    from robot.run_bc import train_bc

    run = tmp_path / "run"
    with FolderLock(run, what="robot/train_bc.py"):
        with pytest.raises(FolderLockedError, match=rf"in use by robot/train_bc.py \(PID {os.getpid()} on host "
                                                    rf"{socket.gethostname()}"):
            train_bc(compose(_overrides(tmp_path, tiny_demos)), run)
        assert os.listdir(run) == [".lock"]  # the holder's folder is left alone
    assert not (tmp_path / "cache").exists()


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
    assert not (tmp_path / "run").exists()  # Hydra wrote no .hydra/ or log there, train_bc no config.yaml
