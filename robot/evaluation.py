"""Policy rollouts in vectorised environments; success comes only from the env's
``info["success"]`` (computed by the simulator from the task joints), never from the policy.

Every evaluation runs the same episode seeds (``seed0 + i``), so success curves compare the
same initial states. Observations of all environments are encoded in one batched encoder call
per control step (``encode_batch`` caps the environments per call); the environments step in
their own processes (``num_envs``; 0 = one per CPU core). With a ``timing`` dict,
:func:`run_episodes` adds the wall seconds spent waiting for the environments (physics +
rendering), in the encoder and in the policy head, and the number of control steps.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .obs_encoders import ObsEncoder

# Idle environments of a last, partial round reset with seeds this far above the last seed (their
# episodes are not counted); robot/corpus.py keeps its seeds clear of them.
PAD_SEED_OFFSET = 10_000_000


@dataclass
class EpisodeRecord:
    seed: int
    success: bool
    steps: int                  # control steps run
    success_step: int | None    # first step at which info["success"] held (None: never)
    solved_steps: int           # steps at which the task was within its threshold

    def to_dict(self) -> dict:
        return asdict(self)


class EvalEnvs:
    """A lazily created ``envs.make_vec`` pool, reused across evaluations of one run
    (``num_envs <= 0``: one environment process per CPU core)."""

    def __init__(self, env_id: str, num_envs: int, camera: str | None, image_size: int, horizon: int,
                 env_kwargs: dict | None = None):
        self.env_id, self.num_envs, self.camera = env_id, auto_num_envs(num_envs), camera
        self.image_size, self.horizon, self.env_kwargs = image_size, horizon, dict(env_kwargs or {})
        self._vec = None

    @property
    def vec(self):
        if self._vec is None:
            import envs

            self._vec = envs.make_vec(self.env_id, self.num_envs, camera=self.camera, image_size=self.image_size,
                                      horizon=self.horizon, **self.env_kwargs)
        return self._vec

    def close(self) -> None:
        if self._vec is not None:
            self._vec.close()
            self._vec = None


def auto_num_envs(num_envs: int) -> int:
    """``num_envs``, or the CPU cores this process may use when it is 0 (rendering is per process)."""
    from egohod.measure import usable_cores

    if num_envs > 0:
        return int(num_envs)
    return max(1, usable_cores())


TIMING_KEYS = ("env_s", "encode_s", "policy_s", "env_steps")


def encode_in_batches(encoder: ObsEncoder, history: np.ndarray, batch: int | None) -> torch.Tensor:
    """Features of every environment's history, at most ``batch`` environments per encoder call."""
    if not batch or batch >= len(history):
        return encoder.encode_history(history)
    return torch.cat([encoder.encode_history(history[s:s + batch]) for s in range(0, len(history), batch)])


def env_obs_key(encoder: ObsEncoder) -> str:
    return "rgb" if encoder.needs_rgb else "object_state"


def _info_array(info: dict, key: str, n: int, default) -> np.ndarray:
    v = info.get(key)
    if v is None:
        return np.full(n, default)
    mask = info.get(f"_{key}")
    v = np.asarray(v)
    return np.where(mask, v, default) if mask is not None else v


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Torch intra-op threads inside the block (``None``/0: leave them). On a busy CPU a small
    head runs far faster on one thread (measured 1.2 ms vs 28-42 ms per act on this 2-core
    machine under load), while the encoder's large matmuls want every core."""
    prev = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(prev)


@dataclass
class Threads:
    """CPU threads of the rollout: the encoder's forward and the policy head's (None: as set)."""

    encoder: int | None = None
    head: int | None = None


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def run_episodes(policy, encoder: ObsEncoder, pool: EvalEnvs, seeds: list[int], device,
                 record: int = 0, progress=None, encode_batch: int | None = None,
                 timing: dict | None = None, threads: Threads | None = None
                 ) -> tuple[list[EpisodeRecord], list[list[np.ndarray]]]:
    """Roll out ``len(seeds)`` episodes, ``pool.num_envs`` at a time. Returns the episode
    records and, for the first ``record`` episodes, their RGB frames (``pool.camera`` needed)."""
    if record and pool.camera is None:
        raise ValueError("recording videos needs an environment camera")
    clock = {k: 0.0 for k in TIMING_KEYS}
    try:
        return _run_episodes(policy, encoder, pool, seeds, device, record, progress, encode_batch, clock,
                             threads or Threads())
    finally:
        if timing is not None:
            for k in TIMING_KEYS:
                timing[k] = timing.get(k, 0) + clock[k]


def _run_episodes(policy, encoder, pool, seeds, device, record, progress, encode_batch, clock, threads):
    policy.eval()
    key = env_obs_key(encoder)
    n = pool.num_envs
    vec = pool.vec  # created here on first use: process start-up is not part of the env timing
    records: list[EpisodeRecord] = []
    videos: list[list[np.ndarray]] = []
    for start in range(0, len(seeds), n):
        round_seeds = list(seeds[start:start + n])
        live = len(round_seeds)
        padded = round_seeds + [round_seeds[-1] + PAD_SEED_OFFSET + i for i in range(n - live)]
        t0 = time.perf_counter()
        obs, info = vec.reset(seed=padded)
        clock["env_s"] += time.perf_counter() - t0
        hist = encoder.new_history(obs[key])
        state = policy.initial_state(n)
        done = np.zeros(n, bool)
        steps = np.zeros(n, int)
        success = np.zeros(n, bool)
        success_step = np.full(n, -1)
        solved = np.zeros(n, int)
        rec = [i for i in range(live) if start + i < record]
        frames = {i: [obs["rgb"][i]] for i in rec}
        for t in range(pool.horizon):
            t0 = time.perf_counter()
            with torch_threads(threads.encoder):
                feats = encode_in_batches(encoder, hist, encode_batch).to(device)
                _sync(device)
            t1 = time.perf_counter()
            prop = torch.as_tensor(obs["proprio"], dtype=torch.float32, device=device)
            with torch_threads(threads.head):
                act, state = policy.act(feats, prop, state)
                act = act.detach().cpu().numpy().astype(np.float32)
            t2 = time.perf_counter()
            obs, _, term, trunc, info = vec.step(act)
            clock["encode_s"] += t1 - t0
            clock["policy_s"] += t2 - t1
            clock["env_s"] += time.perf_counter() - t2
            clock["env_steps"] += n
            active = ~done
            steps[active] += 1
            succ_now = _info_array(info, "success", n, False).astype(bool)
            newly = active & succ_now & ~success
            success_step[newly] = t + 1
            success |= active & succ_now
            solved[active] = _info_array(info, "solved_steps", n, 0)[active]
            for i in rec:
                if active[i]:
                    frames[i].append(obs["rgb"][i])
            done |= np.asarray(term) | np.asarray(trunc)
            if progress is not None:
                progress.update(int(active[:live].sum()))
            if done.all():
                break
            hist = encoder.push_history(hist, obs[key])
        for i in range(live):
            records.append(EpisodeRecord(int(round_seeds[i]), bool(success[i]), int(steps[i]),
                                         None if success_step[i] < 0 else int(success_step[i]), int(solved[i])))
        videos += [frames[i] for i in rec]
    return records, videos


def evaluate(policy, encoder: ObsEncoder, pool: EvalEnvs, episodes: int, seed0: int, device,
             desc: str = "eval", encode_batch: int | None = None, timing: dict | None = None,
             threads: Threads | None = None) -> dict:
    """Success rate over ``episodes`` episodes with seeds ``seed0 .. seed0 + episodes - 1``.

    The policy's sampling (GMM heads) uses a fixed torch seed inside a forked RNG, so an
    evaluation neither depends on nor disturbs the training RNG stream."""
    from tqdm.auto import tqdm

    seeds = [seed0 + i for i in range(episodes)]
    with torch.random.fork_rng(devices=[]), tqdm(total=episodes * pool.horizon, desc=desc, unit="step",
                                                 leave=False, mininterval=2.0) as bar:
        torch.manual_seed(seed0)
        records, _ = run_episodes(policy, encoder, pool, seeds, device, progress=bar, encode_batch=encode_batch,
                                  timing=timing, threads=threads)
    rate = float(np.mean([r.success for r in records]))
    return {"success_rate": rate, "episodes": [r.to_dict() for r in records]}


def write_video(path, frames: list[np.ndarray], fps: float = 12.5) -> None:
    """Rollout frames (uint8 ``[H, W, 3]`` each) as an h264 mp4 through
    :func:`egohod.data.video.write_video` (written to a temporary name, renamed when complete).
    yuv420p needs an even frame size: an odd height or width gets its last row or column repeated."""
    from egohod.data import video as video_io

    video = np.stack([np.asarray(f) for f in frames])
    pad = ((0, 0), (0, video.shape[1] % 2), (0, video.shape[2] % 2), (0, 0))
    if any(after for _, after in pad):
        video = np.pad(video, pad, mode="edge")
    video_io.write_video(path, video, fps)
