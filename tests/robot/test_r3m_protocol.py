"""protocol=r3m from train_bc's side: the preset's values, its camera check, R3M's per-epoch
evaluation seeds, best_heldout on a tiny run, and the R3M pickle reader's task mapping."""
import pickle
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from robot.config import HELDOUT_SEED, ConfigError, EvalConfig

ROOT = Path(__file__).resolve().parents[2]


def compose(overrides):
    from hydra import compose as hy_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from robot.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hy_compose("robot/train_bc", overrides=overrides)


def test_presets():
    ours, r3m = compose([]), compose(["protocol=r3m"])
    assert (ours.protocol, ours.env.name, ours.env.camera, ours.env.success, ours.eval.seed_schedule,
            ours.policy.name) == ("egohod", "kitchen", "left", "task", "fixed", "mlp")
    assert (r3m.protocol, r3m.env.name, r3m.env.camera, r3m.env.success, r3m.eval.seed_schedule,
            r3m.policy.name) == ("r3m", "kitchen_r3m", "left_cap2", "strict", "per_epoch", "mlp_r3m")
    # what both share with R3M's BC_config.yaml: 20k steps, batch 32, lr 1e-3, 50 x 50-step episodes every 1k
    for c in (ours, r3m):
        assert (c.train.steps, c.train.batch_size, c.train.lr, c.eval.every, c.eval.episodes, c.env.horizon) == \
            (20000, 32, 1e-3, 1000, 50, 50)
    # a group the user picks wins over the preset's own choice
    assert compose(["protocol=r3m", "env=kitchen_fixed"]).env.kitchen_noise == 0.0
    assert compose(["protocol=r3m", "policy=mlp"]).policy.name == "mlp"


def test_r3m_protocol_refuses_this_packages_cameras():
    from robot.run_bc import check_protocol

    check_protocol(compose(["protocol=r3m", "env.camera=right_cap2"]))
    with pytest.raises(ConfigError, match="set env.camera=left_cap2"):
        check_protocol(compose(["protocol=r3m", "env.camera=left"]))
    with pytest.raises(ConfigError, match="no default camera"):
        check_protocol(compose(["protocol=r3m", "env.camera=default"]))
    check_protocol(compose(["env.camera=left_cap2"]))  # R3M's camera in this package's protocol is fine


def test_per_epoch_seeds_follow_r3m_train_loop():
    from robot.run_bc import eval_seed0

    cfg = compose(["protocol=r3m", "seed=2"])
    # 25 demos x 50 steps = 1250 samples, batch 32 -> 39 updates per epoch; step 1000 falls in epoch
    # 25 (0-based: 25 x 39 = 975 < 1000 <= 26 x 39), step 2000 in epoch 51 (R3M: base_seed = seed + epoch)
    assert [eval_seed0(cfg, s, 1250) for s in (39, 40, 1000, 2000)] == [100002, 100003, 100027, 100053]
    fixed = compose(["seed=2"])
    assert {eval_seed0(fixed, s, 1250) for s in (39, 1000, 2000)} == {100000}
    with pytest.raises(ConfigError, match="seed_schedule"):
        from robot.config import validate
        validate(compose(["eval.seed_schedule=random", "out=x"]))


def _write_state_demos(path, env_name="kitchen_r3m/microwave", n=2, T=10):
    from robot.demos import Episode, kitchen_env_args, write_demos

    rng = np.random.default_rng(0)
    eps = [Episode(obs={"proprio": rng.standard_normal((T, 9)).astype(np.float32),
                        "object_state": rng.standard_normal((T, 30)).astype(np.float32)},
                   actions=rng.uniform(-1, 1, (T, 9)).astype(np.float32), rewards=np.zeros(T), dones=np.eye(T)[-1],
                   states=np.zeros((T, 59)), seed=i, task="microwave") for i in range(n)]
    write_demos(path, eps, kitchen_env_args(env_name, [], 32))
    return path


def test_best_heldout_is_the_best_checkpoint_on_fresh_seeds(tmp_path):
    from robot.run_bc import evaluate_checkpoint, train_bc

    demos = _write_state_demos(tmp_path / "d.hdf5")
    o = {"protocol": "r3m", "encoder": "state", "env.image_size": 32, "env.horizon": 6, "demos.path": str(demos),
         "demos.num": 2, "train.steps": 6, "train.batch_size": 8, "eval.every": 2, "eval.episodes": 2,
         "eval.num_envs": 1, "eval.videos": 0, "eval.heldout_episodes": 3, "wandb.mode": "disabled",
         "cache.dir": str(tmp_path / "cache"), "out": str(tmp_path / "run")}
    res = train_bc(compose([f"{k}={v}" for k, v in o.items()]), tmp_path / "run")
    held, best = res["best_heldout"], res["best"]
    assert held["step"] == best["step"] and held["checkpoint"].endswith(f"{best['step']:07d}/policy.pt")
    assert held["seeds"] == [HELDOUT_SEED, HELDOUT_SEED + 2] == res["eval_protocol"]["heldout_seeds"]
    eval_seeds = {ep["seed"] for e in res["evals"] for ep in e["episodes"]}
    assert [e["seed0"] for e in res["evals"]] == [100000, 100001, 100002]  # 20 samples / 8 -> 2 updates per epoch
    held_seeds = [ep["seed"] for ep in held["episodes"]]
    assert held_seeds == [HELDOUT_SEED, HELDOUT_SEED + 1, HELDOUT_SEED + 2] and not eval_seeds & set(held_seeds)
    assert max(eval_seeds) < HELDOUT_SEED and min(eval_seeds) >= 100000  # and above the demo seeds
    # computed from the best checkpoint: re-evaluating that file on those seeds gives the same episodes
    again = evaluate_checkpoint(held["checkpoint"], OmegaConf.structured(
        EvalConfig(episodes=3, seed=HELDOUT_SEED, num_envs=1, videos=0)), "cpu", out=tmp_path / "again")
    assert again["evals"][0]["episodes"] == held["episodes"]
    assert res["env"]["strict_success"] is True and res["protocol"] == "r3m"


def _dump(path, n=2, T=5):
    rng = np.random.default_rng(0)
    paths = [{"images": rng.integers(0, 256, (T, 8, 8, 3), dtype=np.uint8), "observations": rng.normal(size=(T, 39)),
              "actions": rng.uniform(-1, 1, (T, 9)), "rewards": np.ones(T)} for _ in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(paths))
    return path


def test_r3m_pickle_reader_maps_tasks_explicitly(tmp_path):
    from robot.demo_sources import DemoFileError, convert_demos, main, read_classic_pickle
    from robot.demos import read_env_args

    root = tmp_path / "final_paths_multiview_rb_200"
    ldoor = _dump(root / "left_cap2" / "kitchen_ldoor_open-v3.pickle")
    with pytest.raises(DemoFileError, match=r"LEFT hinged door.*--map kitchen_ldoor_open-v3=hinge_cabinet"):
        read_classic_pickle(ldoor)
    with pytest.raises(DemoFileError, match="LEFT"):  # naming the task is not naming the mapping
        read_classic_pickle(ldoor, task="hinge_cabinet")
    eps = read_classic_pickle(ldoor, task_map={"kitchen_ldoor_open-v3": "hinge_cabinet"})
    assert eps[0].task == "hinge_cabinet" and eps[0].attrs["source_task"] == "kitchen_ldoor_open-v3"
    assert eps[0].cameras == ["left_cap2"]  # R3M's camera keeps its name: it is a camera here too
    with pytest.raises(DemoFileError, match="LEFT"):
        convert_demos(ldoor, tmp_path / "no.hdf5", progress=False)
    assert not (tmp_path / "no.hdf5").exists()
    assert main(["convert", str(ldoor), str(tmp_path / "l.hdf5"), "--map", "kitchen_ldoor_open-v3=hinge_cabinet"]) == 0
    assert read_env_args(tmp_path / "l.hdf5")["env_name"] == "kitchen_r3m/hinge_cabinet"
    sdoor = _dump(root / "right_cap2" / "kitchen_sdoor_open-v3.pickle")
    assert read_classic_pickle(sdoor)[0].task == "slide_cabinet"
    convert_demos(sdoor, tmp_path / "s.hdf5", progress=False)
    args = read_env_args(tmp_path / "s.hdf5")
    assert (args["env_name"], args["cameras"]) == ("kitchen_r3m/slide_cabinet", ["right_cap2"])
