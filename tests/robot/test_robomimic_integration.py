"""The real robomimic end to end: EgoVideoCore, the kitchen env built by robomimic's env factory,
and robomimic's BC / BC-RNN training loop with rollouts on a demo file made by make_demos."""
import numpy as np
import pytest
import torch

pytest.importorskip("robomimic")

import robomimic.utils.env_utils as EnvUtils  # noqa: E402
import robomimic.utils.file_utils as FileUtils  # noqa: E402
import robomimic.utils.obs_utils as ObsUtils  # noqa: E402
import robomimic.utils.train_utils as TrainUtils  # noqa: E402

import egohod  # noqa: E402
from robot.integrations.robomimic import EgoVideoCore, EnvKitchen  # noqa: E402
from robot.integrations.robomimic.train import kitchen_config, main, run  # noqa: E402
from robot.demos import read_demos, read_env_args  # noqa: E402

TASK = "light_switch"


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    from robot.demo_gen import generate_demos

    out = tmp_path_factory.mktemp("robomimic") / "demos.hdf5"
    return generate_demos(TASK, ["left"], num_demos=2, image_size=32, seed=0, out=out, progress=False,
                          valid_ratio=0.5)


def test_core_is_load_encoder_on_robomimic_frames():
    """robomimic's CHW float frames in [0, 1] give what load_encoder gives on the uint8 frames."""
    core = EgoVideoCore(input_shape=(3, 40, 48), encoder="egovideo_tiny", seed=3)
    ref = egohod.load_encoder("egovideo_tiny", seed=3)
    frames = torch.randint(0, 256, (2, 40, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    z = core(frames.permute(0, 3, 1, 2).float() / 255.0)
    assert z.shape == (2, ref.embed_dim) and core.output_shape((3, 40, 48)) == [ref.embed_dim]
    torch.testing.assert_close(z, ref(frames), atol=1e-5, rtol=1e-5)
    assert "RANDOM WEIGHTS" in repr(core)


def test_frozen_core_stays_frozen_and_trainable_core_learns():
    frozen = EgoVideoCore(input_shape=(3, 32, 32), encoder="egovideo_tiny", feature_dimension=8)
    frozen.train()
    assert not frozen.encoder.visual.training and frozen.project.training
    x = torch.rand(2, 3, 32, 32)
    frozen(x).sum().backward()
    assert all(p.grad is None for p in frozen.encoder.visual.parameters()) and frozen.project.weight.grad is not None
    trainable = EgoVideoCore(input_shape=(3, 32, 32), encoder="egovideo_tiny", trainable=True)
    trainable.train()
    trainable(x).sum().backward()
    assert trainable.encoder.visual.training and any(p.grad is not None and p.grad.abs().sum() > 0
                                                     for p in trainable.encoder.visual.parameters())
    with pytest.raises(ValueError, match="unknown core_kwargs \\['encodr'\\]"):
        EgoVideoCore.check_kwargs({"encodr": "egovideo_b"})
    with pytest.raises(ValueError, match="RGB frames"):
        EgoVideoCore(input_shape=(9,), encoder="egovideo_tiny")
    with pytest.raises(ValueError, match="wraps video encoders"):
        EgoVideoCore(input_shape=(3, 32, 32), encoder="r3m")


def test_env_factory_builds_the_kitchen_from_the_file(demo_file):
    ObsUtils.initialize_obs_utils_with_obs_specs({"obs": {"low_dim": ["proprio"], "rgb": ["rgb_left"]}})
    env = EnvUtils.create_env_from_metadata(env_meta=read_env_args(demo_file), use_image_obs=True)
    try:
        assert isinstance(env, EnvKitchen) and env.name == f"kitchen-{TASK}" and env.action_dimension == 9
        episode = read_demos(demo_file, max_demos=1)[0]
        obs = env.reset_to({"states": episode.states[0]})
        np.testing.assert_allclose(obs["proprio"], episode.obs["proprio"][0], atol=1e-6)
        assert obs["rgb_left"].shape == (3, 32, 32) and obs["rgb_left"].dtype == np.float32
        assert 0.0 <= obs["rgb_left"].min() and obs["rgb_left"].max() <= 1.0
        assert env.serialize()["env_name"] == f"kitchen/{TASK}"
        obs, reward, done, info = env.step(episode.actions[0])
        assert set(obs) == {"proprio", "object_state", "rgb_left"} and reward == env.get_reward()
        assert not done and env.is_success() == {"task": bool(info["success"])}
    finally:
        env.close()


def _tiny(config):
    config.train.num_epochs = 1
    config.train.batch_size = 4
    config.train.cuda = False
    config.experiment.epoch_every_n_steps = 2
    config.experiment.validation_epoch_every_n_steps = 1
    config.experiment.rollout.n = 1
    config.experiment.rollout.horizon = 3
    config.experiment.rollout.rate = 1
    config.experiment.render_video = False
    config.experiment.logging.terminal_output_to_txt = False
    config.experiment.logging.log_tb = False
    return config


@pytest.mark.parametrize("rnn", [False, True], ids=["bc", "bc_rnn"])
def test_robomimic_trains_with_egovideo_core_and_rolls_out(demo_file, tmp_path, rnn):
    config = _tiny(kitchen_config(demo_file, encoder="egovideo_tiny", rnn=rnn, output_dir=tmp_path))
    assert config.experiment.validate and config.train.hdf5_filter_key == "train"
    run(config)  # robomimic.scripts.train.train: 2 steps, validation on mask/valid, one rollout
    (ckpt,) = list(tmp_path.glob("*/*/models/*.pth"))
    assert f"kitchen-{TASK}_success" in ckpt.name
    policy, ckpt_dict = FileUtils.policy_from_checkpoint(ckpt_path=str(ckpt), device=torch.device("cpu"))
    assert ckpt_dict["config"]  # the checkpoint rebuilds the same EgoVideoCore by name
    nets = policy.policy.nets["policy"]
    cores = [m for m in nets.modules() if isinstance(m, EgoVideoCore)]
    assert len(cores) == 1 and not cores[0].trainable
    ref = egohod.load_encoder("egovideo_tiny", seed=0).tower().state_dict()
    for k, v in cores[0].encoder.visual.state_dict().items():  # frozen: training left the tower as loaded
        torch.testing.assert_close(v, ref[k])
    assert (type(nets).__name__ == "RNNActorNetwork") == rnn
    env, _ = FileUtils.env_from_checkpoint(ckpt_dict=ckpt_dict, render_offscreen=False)
    try:
        results = TrainUtils.run_rollout(policy=policy, env=env, horizon=3)
    finally:
        env.close()
    assert results["Horizon"] == 3 and results["Success_Rate"] in (0.0, 1.0)


def test_cli_refuses_an_existing_run_folder(demo_file, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    rc = main(["--dataset", str(demo_file), "--encoder", "egovideo_tiny", "--output-dir", str(tmp_path),
               "--name", "taken"])
    assert rc == 2 and "taken exists" in capsys.readouterr().err
    rc = main(["--dataset", str(demo_file), "--encoder", "egovideo_tiny", "--output-dir", str(tmp_path)])
    assert rc == 2 and "fewer than train.batch_size=100" in capsys.readouterr().err  # not robomimic's StopIteration
    cfg_path = tmp_path / "cfg.json"
    assert main(["--dataset", str(demo_file), "--encoder", "egovideo_tiny", "--write-config", str(cfg_path)]) == 0
    import json

    cfg = json.loads(cfg_path.read_text())
    assert cfg["observation"]["encoder"]["rgb"]["core_class"] == "EgoVideoCore"
    assert cfg["observation"]["modalities"]["obs"]["rgb"] == ["rgb_left"]
