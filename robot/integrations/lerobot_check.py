"""Check an exported LeRobotDataset and the ``egohod`` policy plugin against the real LeRobot.

Runs inside the LeRobot environment of ``scripts/lerobot_venv.sh`` (it imports lerobot, which
egohod's own environment cannot hold)::

    .venv-lerobot/bin/python -m robot.integrations.lerobot_check DATASET_DIR EXPECTED.npz \\
        [--encoder egovideo_tiny] [--steps 3]

``EXPECTED.npz`` holds what the dataset must give back (written by
``tests/robot/test_lerobot_export.py`` from the demo file): ``state``, ``action``, ``frames``
(uint8 ``[N, H, W, 3]`` of the first camera) and ``episode_lengths``. The check loads the
dataset with ``LeRobotDataset(root=...)`` (pyav decoding), compares frames (the video is lossy:
mean absolute difference) and vectors (exact), then builds the ``egohod`` policy through
``register_third_party_plugins()`` + ``make_policy`` + ``make_pre_post_processors``, trains a few
steps, selects an action, saves and reloads it. Prints one JSON line; exits 1 on a failed check.
"""
from __future__ import annotations

import argparse
import json
import sys


def check(root: str, expected_path: str, encoder: str, steps: int) -> dict:
    import numpy as np
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import make_policy, make_policy_config, make_pre_post_processors
    from lerobot.utils.import_utils import register_third_party_plugins

    expected = np.load(expected_path)
    ds = LeRobotDataset("egohod/check", root=root, video_backend="pyav", delta_timestamps={"action": [0.0]})
    report: dict = {"frames": len(ds), "episodes": ds.meta.total_episodes, "fps": ds.fps,
                    "cameras": list(ds.meta.camera_keys), "tasks": list(ds.meta.tasks.index)}
    assert len(ds) == len(expected["action"]), (len(ds), len(expected["action"]))
    assert ds.meta.total_episodes == len(expected["episode_lengths"])
    cam = ds.meta.camera_keys[0]
    picks = sorted({0, len(ds) // 2, len(ds) - 1})
    diffs = []
    for i in picks:
        item = ds[i]
        np.testing.assert_array_equal(item["observation.state"].numpy(), expected["state"][i])
        np.testing.assert_array_equal(item["action"][0].numpy(), expected["action"][i])
        frame = (item[cam].permute(1, 2, 0).numpy() * 255.0)
        diffs.append(float(np.abs(frame - expected["frames"][i].astype(np.float32)).mean()))
        assert isinstance(item["task"], str) and item["task"] in report["tasks"]
    report["frame_mean_abs_diff"] = max(diffs)
    assert report["frame_mean_abs_diff"] < 12.0, report  # lossy video, but the same picture

    register_third_party_plugins()
    cfg = make_policy_config("egohod", encoder=encoder, device="cpu", hidden_dims=[32])
    policy = make_policy(cfg, ds_meta=ds.meta)
    pre, post = make_pre_post_processors(cfg, dataset_stats=ds.meta.stats)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    optim = torch.optim.Adam(policy.get_optim_params(), lr=1e-3)
    losses = []
    policy.train()
    batch = None
    for _, batch in zip(range(steps), loader):
        loss, _ = policy.forward(pre(batch))
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss))
    report["losses"] = losses
    assert all(np.isfinite(losses)), losses
    policy.reset()
    obs = {k: v[:1] for k, v in batch.items() if k.startswith("observation.")}
    action = post(policy.select_action(pre(obs)))
    assert tuple(action.shape) == (1, expected["action"].shape[1]), action.shape
    report["policy"] = {"type": cfg.type, "class": type(policy).__name__, "encoder": policy.encoder.describe()}

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        policy.save_pretrained(tmp)
        again = type(policy).from_pretrained(tmp)
        again.eval()
        policy.eval()
        with torch.no_grad():
            a1 = policy.predict_action_chunk(pre(obs))
            a2 = again.predict_action_chunk(pre(obs))
        report["reload_max_abs_diff"] = float((a1 - a2).abs().max())
        assert report["reload_max_abs_diff"] < 1e-5, report
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot.integrations.lerobot_check", description=__doc__)
    parser.add_argument("root")
    parser.add_argument("expected")
    parser.add_argument("--encoder", default="egovideo_tiny")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        report = check(args.root, args.expected, args.encoder, args.steps)
    except AssertionError as exc:
        print(json.dumps({"ok": False, "error": repr(exc)}))
        return 1
    print(json.dumps({"ok": True, **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
