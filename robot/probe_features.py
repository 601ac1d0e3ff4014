"""How much of the task state do an encoder's frozen features hold? A linear probe on demo frames::

    python robot/probe_features.py DEMOS.hdf5 --encoder egovideo_small \\
        --checkpoint weights/egovideo_small_kitchen/encoder.safetensors [--camera left] [--json out.json]

Encodes every frame of the demo file's camera (``obs/rgb_<camera>``) with the encoder of the given
checkpoint and with the same encoder's RANDOM WEIGHTS (seed ``--seed``), then fits ridge
regressions (standardised inputs, ``--ridge`` penalty) from [features, proprio] to the groups of the
task's object state that vision must supply (``envs.kitchen_env.task_state_index``: the task
joint, the task site, the hand-to-site offset) on the first ``--train`` episodes and reports R^2 on
the others, next to proprio alone. Also the mean pairwise cosine of the features (near 1: every
frame looks the same to the encoder). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

GROUPS = {"task_joint": slice(0, 1), "task_site": slice(4, 7), "hand_to_site": slice(7, 10)}


def ridge_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             ridge: float = 10.0) -> float:
    """R^2 (pooled over output columns) of a ridge fit with standardised inputs and an intercept."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-8
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    b = np.c_[(x_test - mu) / sd, np.ones(len(x_test))]
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y_train)
    resid = ((b @ w - y_test) ** 2).sum()
    return float(1.0 - resid / ((y_test - y_test.mean(0)) ** 2).sum())


def mean_pairwise_cosine(z: np.ndarray, max_items: int = 512) -> float:
    z = z[:: max(1, len(z) // max_items)]
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    c = zn @ zn.T
    return float(c[~np.eye(len(z), dtype=bool)].mean())


def probe(features: list[np.ndarray], proprio: list[np.ndarray], state: list[np.ndarray], train: int,
          ridge: float = 10.0) -> dict:
    """R^2 per state group from [features, proprio], episodes ``[:train]`` fit, the rest scored."""
    x = [np.c_[f, p] for f, p in zip(features, proprio)]
    out = {}
    for name, cols in GROUPS.items():
        y = [s[:, cols] for s in state]
        out[name] = ridge_r2(np.concatenate(x[:train]), np.concatenate(y[:train]),
                             np.concatenate(x[train:]), np.concatenate(y[train:]), ridge)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demos", help="demo HDF5 written by robot/make_demos.py (or the BC demo cache)")
    ap.add_argument("--encoder", default="egovideo_small")
    ap.add_argument("--checkpoint", default=None, help="weights to probe (without: only RANDOM WEIGHTS)")
    ap.add_argument("--camera", default="left")
    ap.add_argument("--seed", type=int, default=0, help="seed of the RANDOM WEIGHTS baseline")
    ap.add_argument("--train", type=int, default=None, help="episodes to fit on (default: 80%%)")
    ap.add_argument("--ridge", type=float, default=10.0)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)

    import h5py
    import torch

    import egohod
    from envs.kitchen_env import task_state_index

    with h5py.File(args.demos, "r") as f:
        names = sorted(f["data"].keys(), key=lambda k: int(k.split("_")[1]))
        env_args = json.loads(f["data"].attrs["env_args"])
        task = env_args.get("task") or env_args["env_name"].split("/")[-1]
        key = f"rgb_{args.camera}"
        if key not in f["data"][names[0]]["obs"]:
            print(f"probe_features: {args.demos} has no obs/{key} (cameras: "
                  f"{sorted(k[4:] for k in f['data'][names[0]]['obs'] if k.startswith('rgb_'))})", file=sys.stderr)
            return 2
        idx = list(task_state_index(task))
        images = [f["data"][n]["obs"][key][:] for n in names]
        proprio = [f["data"][n]["obs"]["proprio"][:] for n in names]
        state = [f["data"][n]["obs"]["object_state"][:][:, idx] for n in names]
    train = args.train if args.train is not None else max(1, int(0.8 * len(names)))
    if not 0 < train < len(names):
        print(f"probe_features: --train must be in [1, {len(names) - 1}]", file=sys.stderr)
        return 2
    result = {"demos": args.demos, "task": task, "camera": args.camera, "episodes": len(names), "train_episodes": train,
              "proprio_only": probe([np.zeros((len(p), 0)) for p in proprio], proprio, state, train, args.ridge)}
    encoders = [(f"RANDOM WEIGHTS (seed {args.seed})", None)] + ([("checkpoint", args.checkpoint)] if args.checkpoint else [])
    for label, ckpt in encoders:
        enc = egohod.load_encoder(args.encoder, checkpoint=ckpt, seed=args.seed)
        with torch.no_grad():
            feats = [enc(torch.from_numpy(x)).float().numpy() for x in images]
        result[label] = {"weights": enc.weights, "mean_pairwise_cosine": mean_pairwise_cosine(np.concatenate(feats)),
                         **probe(feats, proprio, state, train, args.ridge)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        from egohod.fileio import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
