"""LeRobotDataset v3.0 export checked against the format (read from lerobot 0.6.1's source), and
(slow, when scripts/lerobot_venv.sh has made .venv-lerobot) against the real LeRobot with the
``egohod`` policy plugin."""
import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robot.demos import Episode, kitchen_env_args, write_demos
from robot.export_lerobot import export_lerobot, main

REPO = Path(__file__).resolve().parents[2]
LENGTHS = (5, 7, 4)


def _frames(t, h, w, phase):
    """Smooth moving gradients (what video codecs keep well), uint8 [t, h, w, 3]."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = [np.stack([(xx * 255 // w + 9 * (i + phase)) % 256, (yy * 255 // h) % 256,
                     np.full_like(xx, 40 * phase + 20)], -1) for i in range(t)]
    return np.asarray(out, dtype=np.uint8)


def _episode(t, i, h=16, w=24):
    rng = np.random.default_rng(i)
    obs = {"rgb_left": _frames(t, h, w, i), "rgb_right": _frames(t, h, w, i + 3),
           "proprio": rng.normal(size=(t, 9)).astype(np.float32),
           "object_state": rng.normal(size=(t, 30)).astype(np.float32)}
    return Episode(obs=obs, actions=rng.uniform(-1, 1, (t, 9)), rewards=np.arange(t) % 2, dones=np.eye(t)[-1],
                   states=rng.normal(size=(t, 59)), task="microwave")


@pytest.fixture()
def demo_file(tmp_path):
    path = tmp_path / "demos.hdf5"
    episodes = [_episode(t, i) for i, t in enumerate(LENGTHS)]
    write_demos(path, episodes, kitchen_env_args("kitchen/microwave", ["left", "right"], 16, horizon=50))
    return path, episodes


def test_dataset_layout_is_lerobot_v3(demo_file, tmp_path):
    src, episodes = demo_file
    out = tmp_path / "ds"
    summary = export_lerobot(src, out, fps=10, progress=False)
    assert summary["episodes"] == 3 and summary["frames"] == sum(LENGTHS) and summary["cameras"] == ["left", "right"]
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["splits"] == {"train": "0:3"}
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 16, 1)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    feats = info["features"]
    assert feats["observation.images.left"]["dtype"] == "video" and feats["observation.images.left"]["shape"] == [16, 24, 3]
    assert feats["observation.images.left"]["info"]["video.fps"] == 10
    assert feats["observation.state"] == {"dtype": "float32", "shape": [9], "names": feats["action"]["names"]}
    assert feats["observation.environment_state"]["shape"] == [30]
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):  # LeRobot's DEFAULT_FEATURES
        assert feats[key]["shape"] == [1]

    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert set(data.column_names) == {k for k, f in feats.items() if f["dtype"] != "video"}
    state_type = data.schema.field("observation.state").type  # datasets' Sequence(float32, length=9)
    assert state_type.list_size == 9 and str(state_type.value_type) == "float"
    cols = data.to_pydict()
    assert cols["index"] == list(range(16))
    assert cols["episode_index"] == [e for e, t in enumerate(LENGTHS) for _ in range(t)]
    assert cols["frame_index"][5:12] == list(range(7))
    np.testing.assert_allclose(cols["timestamp"][5:12], np.arange(7) / 10, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(cols["action"][5:12], np.float32), episodes[1].actions)
    np.testing.assert_array_equal(np.asarray(cols["observation.state"][:5]), episodes[0].obs["proprio"])
    assert cols["next.done"][4] and not cols["next.done"][3]

    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert eps["length"] == list(LENGTHS) and eps["dataset_from_index"] == [0, 5, 12]
    assert eps["dataset_to_index"] == [5, 12, 16] and eps["tasks"] == [["open the microwave door"]] * 3
    np.testing.assert_allclose(eps["videos/observation.images.right/from_timestamp"], [0.0, 0.5, 1.2])
    np.testing.assert_allclose(eps["videos/observation.images.right/to_timestamp"], [0.5, 1.2, 1.6])
    assert len(eps["stats/observation.state/mean"][0]) == 9
    tasks = pq.read_table(out / "meta/tasks.parquet").to_pandas()
    assert list(tasks.index) == ["open the microwave door"] and list(tasks["task_index"]) == [0]

    stats = json.loads((out / "meta/stats.json").read_text())
    state = np.concatenate([e.obs["proprio"] for e in episodes])
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["std"], state.std(0), rtol=1e-5, atol=1e-6)
    assert stats["observation.state"]["count"] == [16]
    assert set(stats["action"]) >= {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    img = np.asarray(stats["observation.images.left"]["mean"])
    assert img.shape == (3, 1, 1) and 0 < img.min() and img.max() < 1


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])
def test_videos_hold_every_episode_at_its_timestamps(demo_file, tmp_path, codec):
    import av

    src, episodes = demo_file
    out = tmp_path / "ds"
    export_lerobot(src, out, fps=10, codec=codec, progress=False)
    with av.open(str(out / "videos/observation.images.left/chunk-000/file-000.mp4")) as container:
        stream = container.streams.video[0]
        decoded = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        rate = Fraction(stream.average_rate)  # read while the file is open: the stream is freed with it
    assert [t for t, _ in decoded] == pytest.approx([i / 10 for i in range(16)])
    source = np.concatenate([e.obs["rgb_left"] for e in episodes]).astype(float)
    frames = np.stack([f for _, f in decoded]).astype(float)
    err = np.abs(frames[:, None] - source[None]).mean(axis=(2, 3, 4))  # [decoded, source]
    assert (err.argmin(axis=1) == np.arange(16)).all()  # each decoded frame is its own source frame
    assert np.diag(err).max() < 10.0  # lossy (h264 / AV1 at 16x24 px) but the same pictures
    assert rate == 10


def test_existing_output_is_refused_and_failures_leave_nothing(demo_file, tmp_path, capsys):
    src, _ = demo_file
    out = tmp_path / "ds"
    out.mkdir()
    assert main([str(src), str(out)]) == 2 and "exists" in capsys.readouterr().err
    assert main([str(src), str(out), "--overwrite", "--task", "do it"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == ["do it"]
    odd = tmp_path / "odd.hdf5"
    write_demos(odd, [_episode(3, 0, h=15, w=24)], kitchen_env_args("kitchen/microwave", ["left", "right"], 15))
    with pytest.raises(ValueError, match="even frame sizes"):
        export_lerobot(odd, tmp_path / "odd_ds", progress=False)
    assert not list(tmp_path.glob("odd_ds*"))


LEROBOT_PYTHON = REPO / ".venv-lerobot" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not LEROBOT_PYTHON.exists(), reason="no .venv-lerobot (make it with scripts/lerobot_venv.sh)")
def test_real_lerobot_reads_the_dataset_and_trains_the_egohod_plugin(demo_file, tmp_path):
    src, episodes = demo_file
    out = tmp_path / "ds"
    export_lerobot(src, out, fps=10, progress=False)
    expected = tmp_path / "expected.npz"
    np.savez(expected, state=np.concatenate([e.obs["proprio"] for e in episodes]),
             action=np.concatenate([e.actions for e in episodes]).astype(np.float32),
             frames=np.concatenate([e.obs["rgb_left"] for e in episodes]), episode_lengths=np.asarray(LENGTHS))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_LEROBOT_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([str(LEROBOT_PYTHON), "-m", "robot.integrations.lerobot_check", str(out), str(expected),
                           "--encoder", "egovideo_tiny"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["frames"] == 16 and report["policy"]["class"] == "EgohodPolicy"
    assert report["cameras"] == ["observation.images.left", "observation.images.right"]
    train = subprocess.run(  # LeRobot's own training command finds the plugin by --policy.type
        [str(LEROBOT_PYTHON.parent / "lerobot-train"), "--dataset.repo_id=egohod/check", f"--dataset.root={out}",
         "--dataset.video_backend=pyav", "--policy.type=egohod", "--policy.encoder=egovideo_tiny",
         "--policy.hidden_dims=[32]", "--policy.device=cpu", "--policy.push_to_hub=false", "--steps=2",
         "--batch_size=4", "--save_freq=2", "--wandb.enable=false", "--num_workers=0",
         f"--output_dir={tmp_path / 'train'}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    saved = tmp_path / "train" / "checkpoints" / "000002" / "pretrained_model"
    assert json.loads((saved / "config.json").read_text())["type"] == "egohod"
    assert (saved / "model.safetensors").exists()
