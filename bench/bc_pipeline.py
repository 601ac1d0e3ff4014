"""Wall time of one BC protocol cell's training: cached frozen features (this project) against
the encoder in the training loop (the classic implementation: every batch of demo frames goes
through the frozen encoder at every step). Same machine, same process, same data; JSON out::

    python bench/bc_pipeline.py --encoder egovideo_b --steps 20000 --inloop-steps 200
    python bench/bc_pipeline.py --encoder egovideo_tiny --image-size 32        # CPU smoke

Both pipelines train the same MLP head on the same batches (same sampler seed). Cached: encode
every demo step once (the feature-cache fill), then ``steps`` updates on features. In-loop:
``steps`` updates, each encoding its batch's frame histories first. The in-loop pipeline is
timed for ``--inloop-steps`` steps and extrapolated linearly to ``--steps`` (its cost per step is
constant); the JSON says which numbers are measured and which extrapolated. Evaluation rollouts
encode environment frames identically in both pipelines and are not part of this comparison.
Demo frames are synthetic uint8 noise of the protocol's size (an encoder's cost does not depend
on pixel values): 25 demos x 50 steps by default.

``--cell`` times one real BC cell instead (``robot.run_bc.train_bc``: feature cache fill, updates,
evaluation rollouts in the real environments) and reports its split: ``render`` (waiting for the
environment processes: physics + rendering), ``encode`` (the frozen encoder on the rollout
frames, one forward for all environments per step), ``policy`` (the head's forward), ``train``
(the updates) and ``features`` (the cache fill), with the per-step costs and the classic cell
(20,000 updates, 20 evaluations x 50 episodes x 50 steps, 25 demos x 50 steps encoded) projected
from them::

    python bench/bc_pipeline.py --cell --encoder state
    python bench/bc_pipeline.py --cell --encoder egovideo_b --device cuda --eval-precision bf16
    python bench/bc_pipeline.py --cell --encoder egovideo_b --episodes 2 --horizon 10 --steps 100   # CPU, reduced

The cell's demos are a synthetic demo file (noise frames, random proprio and actions) written
into a temporary folder, so no demo generation is timed and the success rate means nothing.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from egohod.device import resolve_device
from egohod.measure import emit, machine


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class threads:
    """Torch intra-op threads inside a block (CPU only): small head updates run on
    ``--train-threads`` in both pipelines, as ``robot/train_bc.py`` does (train.cpu_threads)."""

    def __init__(self, n: int, device):
        self.n, self.on = n, device.type == "cpu" and n > 0

    def __enter__(self):
        self.prev = torch.get_num_threads()
        if self.on:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)


def run(args) -> dict:
    from policies import create_policy
    from robot.bc_data import BCBatch, BCData
    from robot.obs_encoders import build_obs_encoder, history_index
    from robot.training import train_step

    device = resolve_device(args.device, "--device")
    torch.manual_seed(0)
    enc = build_obs_encoder(args.encoder, args.checkpoint, args.frames, str(device))
    rng = np.random.default_rng(0)
    T, n = args.demo_len, args.demos
    frames = [rng.integers(0, 256, (T, args.image_size, args.image_size, 3), dtype=np.uint8) for _ in range(n)]
    proprio = [rng.standard_normal((T, 9)).astype(np.float32) for _ in range(n)]
    actions = [rng.uniform(-1, 1, (T, 9)).astype(np.float32) for _ in range(n)]
    all_frames = np.concatenate(frames)
    hist = np.concatenate([s + history_index(T, args.frames) for s in range(0, n * T, T)])  # global indices

    def new_head(dim):
        torch.manual_seed(0)
        return create_policy("mlp", dim, 9, 9).to(device)

    # warm-up (allocations, cudnn autotune) outside the timings
    enc.encode_history(all_frames[hist[: args.batch]])
    _sync(device)

    # --- cached features: encode each demo step once, then train on features ---------------------
    t0 = time.perf_counter()
    feats = [enc.encode_episode(f, batch=args.encode_batch) for f in frames]
    _sync(device)
    encode_s = time.perf_counter() - t0
    data = BCData(feats, proprio, actions)
    head = new_head(enc.info.embed_dim)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with threads(args.train_threads, device):
        for _ in range(args.steps):
            train_step(head, opt, data.sample(args.batch, 1, g).to(device))
    _sync(device)
    cached_train_s = time.perf_counter() - t0

    # --- encoder in the loop: the same sampler, frames encoded at every step ----------------------
    head = new_head(enc.info.embed_dim)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    starts = data.window_starts(1)
    prop_all, act_all = data.proprio, data.actions
    t0 = time.perf_counter()
    for _ in range(args.inloop_steps):
        idx = starts[torch.randint(len(starts), (args.batch,), generator=g)]
        f = enc.encode_history(all_frames[hist[idx.numpy()]])  # frozen forward on raw frames
        batch = BCBatch(f[:, None], prop_all[idx][:, None], act_all[idx][:, None]).to(device)
        with threads(args.train_threads, device):
            train_step(head, opt, batch)
    _sync(device)
    inloop_measured_s = time.perf_counter() - t0
    inloop_per_step = inloop_measured_s / args.inloop_steps
    inloop_train_s = inloop_per_step * args.steps
    cached_total = encode_s + cached_train_s
    return {
        "benchmark": "bc_pipeline",
        "encoder": enc.info.name,
        "weights": enc.info.weights if not enc.info.random_weights else "random (RANDOM WEIGHTS: timing only)",
        "train_threads": args.train_threads,
        "frames": args.frames, "clip_len": enc.info.clip_len, "image_size": args.image_size,
        "demos": n, "demo_len": T, "steps": args.steps, "batch": args.batch,
        "cached": {"encode_s": round(encode_s, 3), "train_s": round(cached_train_s, 3),
                   "total_s": round(cached_total, 3), "measured": True},
        "encoder_in_loop": {"measured_steps": args.inloop_steps, "measured_s": round(inloop_measured_s, 3),
                            "per_step_s": round(inloop_per_step, 5), "total_s": round(inloop_train_s, 3),
                            "extrapolated": args.inloop_steps != args.steps},
        "speedup": round(inloop_train_s / cached_total, 1),
        "target_speedup": 20.0,
        "machine": machine(device),
    }


CLASSIC_CELL = {"train_steps": 20000, "env_steps": 20 * 50 * 50, "feature_frames": 25 * 50}


def _synthetic_demos(path: Path, args, task: str) -> Path:
    from robot.demos import Episode, kitchen_env_args, write_demos

    rng = np.random.default_rng(0)
    T, eps = args.demo_len, []
    for i in range(args.demos):
        obs = {"rgb_left": rng.integers(0, 256, (T, args.image_size, args.image_size, 3), dtype=np.uint8),
               "proprio": rng.standard_normal((T, 9)).astype(np.float32),
               "object_state": rng.standard_normal((T, 30)).astype(np.float32)}
        eps.append(Episode(obs=obs, actions=rng.uniform(-1, 1, (T, 9)).astype(np.float32), rewards=np.zeros(T),
                           dones=np.eye(T)[-1], states=np.zeros((T, 59)), seed=i, task=task))
    return write_demos(path, eps, kitchen_env_args(f"kitchen/{task}", ["left"], args.image_size))


def run_cell(args) -> dict:
    """One real BC cell (robot.run_bc.train_bc) and its time split."""
    import tempfile

    from robot.run_bc import train_bc
    from robot.sweep import compose_cell

    task = "microwave"
    with tempfile.TemporaryDirectory(prefix="bc_cell_") as tmp:
        tmp = Path(tmp)
        demos = _synthetic_demos(tmp / "demos.hdf5", args, task)
        overrides = [f"encoder={args.encoder}", f"env.task={task}", "env.camera=left", f"env.image_size={args.image_size}",
                     f"env.horizon={args.horizon}", f"demos.path={demos}", f"demos.num={args.demos}",
                     f"train.steps={args.steps}", f"train.batch_size={args.batch}", f"eval.every={args.eval_every}",
                     f"eval.episodes={args.episodes}", f"eval.num_envs={args.num_envs}", "eval.videos=0",
                     "eval.heldout_episodes=0", f"eval.precision={args.eval_precision}",
                     f"eval.compile={str(args.compile).lower()}", f"train.cpu_threads={args.train_threads}",
                     f"device={args.device}", f"cache.dir={tmp / 'features'}", f"cache.encode_batch={args.encode_batch}",
                     "wandb.mode=disabled", f"out={tmp / 'run'}"]
        if args.checkpoint:
            overrides.append(f"encoder.checkpoint={args.checkpoint}")
        cfg = compose_cell(overrides)
        import contextlib

        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON
            res = train_bc(cfg, tmp / "run")
        wall = time.perf_counter() - t0
    timing = res["timing"]
    split = timing.get("eval_split", {})
    env_steps = int(split.get("env_steps", 0))
    frames = args.demos * args.demo_len
    per = {"train_step_s": timing["train_seconds"] / args.steps,
           "render_per_env_step_s": split.get("env_s", 0.0) / max(env_steps, 1),
           "encode_per_env_step_s": split.get("encode_s", 0.0) / max(env_steps, 1),
           "policy_per_env_step_s": split.get("policy_s", 0.0) / max(env_steps, 1),
           "feature_per_frame_s": timing.get("feature_seconds", 0.0) / frames}
    projected = {"train_s": per["train_step_s"] * CLASSIC_CELL["train_steps"],
                 "render_s": per["render_per_env_step_s"] * CLASSIC_CELL["env_steps"],
                 "encode_s": per["encode_per_env_step_s"] * CLASSIC_CELL["env_steps"],
                 "policy_s": per["policy_per_env_step_s"] * CLASSIC_CELL["env_steps"],
                 "features_s": per["feature_per_frame_s"] * CLASSIC_CELL["feature_frames"]}
    projected["total_s"] = sum(projected.values())
    enc = res["encoder"]
    return {
        "benchmark": "bc_pipeline_cell",
        "encoder": enc["name"],
        "weights": "random (RANDOM WEIGHTS: timing only)" if enc.get("random_weights") else enc.get("weights"),
        "settings": {"demos": args.demos, "demo_len": args.demo_len, "image_size": args.image_size,
                     "steps": args.steps, "eval_every": args.eval_every, "episodes": args.episodes,
                     "horizon": args.horizon, "num_envs": args.num_envs, "precision": args.eval_precision,
                     "compile": args.compile, "train_threads": args.train_threads},
        "measured": {"wall_s": round(wall, 3), "train_s": timing["train_seconds"], "eval_s": timing["eval_seconds"],
                     "render_s": round(split.get("env_s", 0.0), 3), "encode_s": round(split.get("encode_s", 0.0), 3),
                     "policy_s": round(split.get("policy_s", 0.0), 3), "env_steps": env_steps,
                     "features_s": timing.get("feature_seconds", 0.0)},
        "per_step": {k: round(v, 6) for k, v in per.items()},
        "projected_classic_cell": {**{k: round(v, 1) for k, v in projected.items()}, "extrapolated": True,
                                   "basis": "measured per-step costs x (20k updates, 20 x 50 x 50 env steps, "
                                            "1,250 demo frames)"},
        "machine": machine(resolve_device(args.device, "--device")),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="egovideo_b")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--demos", type=int, default=25)
    ap.add_argument("--demo-len", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--inloop-steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--encode-batch", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-threads", type=int, default=1, help="CPU threads of the head updates (0: all)")
    ap.add_argument("--out", help="also write the JSON here")
    cell = ap.add_argument_group("--cell: one real BC cell and its time split")
    cell.add_argument("--cell", action="store_true", help="time one real cell instead of cached vs in-loop")
    cell.add_argument("--eval-every", type=int, default=None, help="default: --steps (one evaluation)")
    cell.add_argument("--episodes", type=int, default=10)
    cell.add_argument("--horizon", type=int, default=50)
    cell.add_argument("--num-envs", type=int, default=0, help="evaluation env processes (0: one per core)")
    cell.add_argument("--eval-precision", choices=("fp32", "bf16"), default="fp32")
    cell.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    args = ap.parse_args(argv)
    if args.cell:
        args.eval_every = args.eval_every or args.steps
        emit(run_cell(args), args.out)
        return 0
    if args.inloop_steps < 1 or args.inloop_steps > args.steps:
        ap.error("--inloop-steps must be in 1..--steps")
    emit(run(args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
