"""Franka Kitchen demonstrations from the scripted experts, in the robomimic HDF5 layout (the
library behind ``robot/make_demos.py`` and the demo cache of the BC scripts)::

    from robot.demo_gen import generate_demos
    path = generate_demos("microwave", ["left"], num_demos=25, image_size=224, seed=0,
                          workers=2, out="demos/microwave_left_25.hdf5")

The expert runs from successive seeds ``seed, seed + 1, ...``; only successful episodes are kept,
until ``num_demos``. Each kept episode holds ``obs/rgb_<camera>`` (one per camera),
``obs/proprio``, ``obs/object_state``, ``actions``, ``rewards``, ``dones`` and ``states``
(flattened ``[qpos, qvel]``); ``obs[t]`` is observed before ``actions[t]``. The file appears at
``out`` only when complete (``robot.demos.DemoWriter``); an existing ``out`` written for the same
request is reused, a different one is an error unless ``overwrite=true``.

:func:`iter_attempts` (one env + renderer per worker process, episodes yielded in seed order) is
also the episode loop of the kitchen corpus (:mod:`robot.corpus_gen`).
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
from omegaconf import MISSING

from egohod.fileio import file_lock

ENV_FAMILY = "kitchen"
N_ACTION = 9  # 7 arm joint + 2 finger velocities


# ------------------------------------------------------------------------------ config
@dataclass
class MakeDemosConfig:
    task: str = MISSING                 # a kitchen task with a scripted expert (envs.experts.list_experts())
    camera: Optional[str] = None        # one camera (shorthand for cameras=[camera])
    cameras: list = field(default_factory=list)  # several cameras in one file; [] and no camera = state only
    num_demos: int = 25                 # successful episodes to keep
    image_size: int = 224               # side of the square frames
    seed: int = 0                       # first episode seed; attempts use seed, seed + 1, ...
    workers: int = 1                    # processes (one env + renderer each)
    out: Optional[str] = None           # output HDF5; null = demos/<task>_<cams>_<n>demos_<size>px_seed<seed>.hdf5
    max_attempts: Optional[int] = None  # give up after this many episodes; null = 4 * num_demos + 20
    horizon: int = 50                   # control steps per episode
    # DART: std of Gaussian noise added to the actions the expert executes (the recorded actions
    # are the expert's own, so a cloned policy learns how the expert corrects small deviations)
    action_noise: float = 0.1
    overwrite: bool = False             # replace an existing `out` written for a different request
    valid_ratio: float = 0.1            # share of demos in the file's mask/valid (robomimic's split)
    split_seed: int = 0                 # seed of the mask/train / mask/valid split
    env_family: str = ENV_FAMILY        # env the expert runs in: kitchen, or kitchen_r3m (R3M's reset, protocol=r3m)


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="robot", name="make_demos_schema", node=MakeDemosConfig)


# ------------------------------------------------------------------------------ request checks
def resolve_cameras(camera: Optional[str] = None, cameras: Sequence[str] | None = None) -> list[str]:
    """The camera list of a request (``camera`` is shorthand for ``[camera]``), validated."""
    import envs

    cams = list(cameras or [])
    if camera:
        if cams and cams != [camera]:
            raise ValueError(f"camera={camera!r} and cameras={cams} disagree; give one of them")
        cams = [camera]
    known = envs.list_cameras(r3m=True)
    for c in cams:
        if c not in known:
            raise ValueError(f"unknown camera {c!r}; valid cameras: {', '.join(known)}")
    if len(set(cams)) != len(cams):
        raise ValueError(f"cameras lists a camera twice: {cams}")
    return cams


def check_request(task: str, cameras: Sequence[str], num_demos: int, image_size: int,
                  workers: int, horizon: int = 50, action_noise: float = 0.0) -> None:
    """Raise a ValueError naming the bad value before any work starts."""
    from envs.experts import list_experts

    experts = list_experts()
    if task not in experts:
        raise ValueError(f"unknown task {task!r}; tasks with a scripted expert: {', '.join(experts)}")
    resolve_cameras(None, cameras)
    if num_demos < 1:
        raise ValueError(f"num_demos must be >= 1, got {num_demos}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not 0.0 <= action_noise <= 1.0:
        raise ValueError(f"action_noise must be in [0, 1] (std of the noise on [-1, 1] actions), got {action_noise}")


def demo_file_name(task: str, cameras: Sequence[str], num_demos: int, image_size: int, seed: int,
                   action_noise: float = 0.0, env_family: str = ENV_FAMILY) -> str:
    cams = "+".join(cameras) if cameras else "nocam"
    noise = f"_noise{action_noise:g}" if action_noise else ""
    family = "" if env_family == ENV_FAMILY else f"{env_family}_"  # e.g. kitchen_r3m (R3M's reset)
    return f"{family}{task}_{cams}_{num_demos}demos_{image_size}px_seed{seed}{noise}.hdf5"


def default_out(task: str, cameras: Sequence[str], num_demos: int, image_size: int, seed: int,
                action_noise: float = 0.0, env_family: str = ENV_FAMILY) -> str:
    return os.path.join("demos", demo_file_name(task, cameras, num_demos, image_size, seed, action_noise,
                                                env_family))


EXPERT_SOURCE_DIR = Path(__file__).resolve().parents[1] / "envs" / "experts"
_NOT_EXPERT_CODE = {"evaluate.py"}  # the success-rate script; it does not change what an expert does


def definition_fingerprint(task: str) -> dict:
    """What the demos of ``task`` depend on besides the request, as short hashes.

    ``task``: sha256 of the task definition (every :class:`envs.kitchen_tasks.KitchenTask` field:
    joints, goal, threshold, site, ...); ``expert``: sha256 of the expert sources (every ``.py``
    in ``envs/experts`` but the evaluation script). A cached demo file whose fingerprint differs
    was made by another expert or for another goal and must not be reused.
    """
    import dataclasses
    import hashlib
    import json

    from envs.kitchen_tasks import get_task

    fields = dataclasses.asdict(get_task(task))
    task_hash = hashlib.sha256(json.dumps(fields, sort_keys=True, default=repr).encode()).hexdigest()
    h = hashlib.sha256()
    for src in sorted(EXPERT_SOURCE_DIR.glob("*.py")):
        if src.name in _NOT_EXPERT_CODE:
            continue
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    return {"task": task_hash[:16], "expert": h.hexdigest()[:16]}


def demo_env_args(task: str, cameras: Sequence[str], image_size: int, seed: int, horizon: int,
                  action_noise: float = 0.0, env_family: str = ENV_FAMILY) -> dict:
    """The ``env_args`` record of a generated file (robomimic keys + what produced the demos)."""
    from robot.demos import kitchen_env_args

    args = kitchen_env_args(f"{env_family}/{task}", list(cameras), image_size, horizon=horizon)
    args["generator"] = {"kind": "scripted_expert", "expert": task, "first_seed": int(seed),
                         "keeps": "successful episodes only, in seed order",
                     "action_noise": float(action_noise),
                         "fingerprint": definition_fingerprint(task)}
    return args


def _request_key(env_args: dict) -> dict:
    gen = env_args.get("generator", {})
    return {
        "env_name": env_args.get("env_name"),
        "cameras": list(env_args.get("cameras", [])),
        "image_size": env_args.get("image_size"),
        "horizon": env_args.get("env_kwargs", {}).get("horizon"),
        "generator": gen.get("kind"),
        "first_seed": gen.get("first_seed"),
        "action_noise": gen.get("action_noise", 0.0),
        "fingerprint": gen.get("fingerprint"),  # task definition + expert code (None: an older file)
    }


class StaleDemosError(ValueError):
    """An existing demo file matches the request but was made by another expert version or for
    another task definition (goal, threshold, ...)."""


def reusable(out: str | os.PathLike, env_args: dict, num_demos: int) -> bool:
    """True when ``out`` exists, was generated for the same request and holds enough demos.

    An existing file that was made for another request raises a ValueError that says what
    differs (the caller may overwrite it instead).
    """
    from robot.demos import read_env_args

    out = Path(out)
    if not out.exists():
        return False
    have = read_env_args(out)
    want_key, have_key = _request_key(env_args), _request_key(have)
    diff = {k: (have_key[k], want_key[k]) for k in want_key if have_key[k] != want_key[k]}
    if list(diff) == ["fingerprint"]:
        have_fp, want_fp = diff["fingerprint"]
        what = ("has no task/expert fingerprint (made before fingerprints were recorded)" if not have_fp else
                "was made " + " and ".join(
                    {"task": "for another task definition (goal/threshold/joints in envs/kitchen_tasks.py)",
                     "expert": "by another version of the expert code (envs/experts)"}[k]
                    for k in ("task", "expert") if have_fp.get(k) != want_fp.get(k)))
        raise StaleDemosError(f"{out} is stale: it {what}; file fingerprint {have_fp!r}, current {want_fp!r}. "
                              "Regenerate it with overwrite=true (or choose another out)")
    if diff:
        lines = ", ".join(f"{k}: file has {a!r}, requested {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{out} exists but was generated for a different request ({lines}); "
                         "choose another out or set overwrite=true")
    count = _count_demos(out)
    if count < num_demos:
        raise ValueError(f"{out} holds {count} demos but num_demos={num_demos}; "
                         "set overwrite=true to regenerate it")
    return True


def _ensure_robomimic_fields(path: Path, valid_ratio: float, split_seed: int) -> None:
    """A reused file made before demo files carried next_obs and masks gets them now."""
    import h5py

    from robot.demos import add_robomimic_fields

    with h5py.File(path, "r") as f:
        complete = "mask" in f and all("next_obs" in f["data"][k] for k in f["data"] if k.startswith("demo_"))
    if not complete:
        add_robomimic_fields(path, valid_ratio, split_seed)


def _count_demos(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return sum(1 for k in f["data"].keys() if k.startswith("demo_"))


# ------------------------------------------------------------------------------ one episode
def record_episode(env, expert, seed: int, cameras: Sequence[str], horizon: int, action_noise: float = 0.0):
    """Run ``expert`` for one seeded episode, recording observations from ``cameras``.

    With ``action_noise`` the env executes the expert's action plus Gaussian noise of that std
    (drawn from the episode seed, so an episode stays reproducible) while the episode records
    the expert's own action: DART-style demos that show how the expert corrects deviations.

    Returns ``(episode, success)`` where ``episode`` is a :class:`robot.demos.Episode`.
    """
    from robot.demos import RGB_PREFIX, Episode

    obs, info = env.reset(seed=seed)
    expert.reset(env)
    noise = np.random.default_rng([int(seed), 0xDA27]).normal(0.0, 1.0, (horizon, N_ACTION)) * action_noise
    frames = {c: [] for c in cameras}
    proprio, object_state, states, actions, rewards, dones = [], [], [], [], [], []
    for t in range(horizon):
        for c in cameras:
            frames[c].append(env.render_camera(c))
        proprio.append(obs["proprio"])
        object_state.append(obs["object_state"])
        states.append(obs["state"])
        action = np.asarray(expert.act(env), dtype=np.float32)
        executed = np.clip(action + noise[t], -1.0, 1.0).astype(np.float32) if action_noise else action
        obs, reward, terminated, truncated, info = env.step(executed)
        actions.append(action)
        rewards.append(reward)
        last = terminated or truncated or t == horizon - 1
        dones.append(1 if last else 0)
        if last:
            break
    episode_obs = {f"{RGB_PREFIX}{c}": np.stack(frames[c]).astype(np.uint8) for c in cameras}
    episode_obs["proprio"] = np.stack(proprio).astype(np.float32)
    episode_obs["object_state"] = np.stack(object_state).astype(np.float32)
    episode = Episode(obs=episode_obs, actions=np.stack(actions), rewards=np.asarray(rewards),
                      dones=np.asarray(dones), states=np.stack(states), seed=int(seed), task=expert.task,
                      attrs={"success": bool(info["success"]), "solved_steps": int(info["solved_steps"])})
    return episode, bool(info["success"])


def attempt(env, expert, seed: int, cameras: Sequence[str], horizon: int, action_noise: float = 0.0):
    """One seed: the recorded episode when the expert succeeds, else None.

    With cameras, the episode is first run without rendering (a fraction of the cost); only a
    successful seed is run again with rendering. Simulation and expert are deterministic for a
    seed, so the rendered run repeats the probe exactly (checked).
    """
    if cameras:
        probe, ok = record_episode(env, expert, seed, [], horizon, action_noise)
        if not ok:
            return None
        episode, ok = record_episode(env, expert, seed, cameras, horizon, action_noise)
        if not ok or not np.array_equal(episode.actions, probe.actions):
            raise RuntimeError(f"seed {seed}: the rendered episode differs from the state-only probe; "
                               "the environment or expert is not deterministic")
        return episode
    episode, ok = record_episode(env, expert, seed, [], horizon, action_noise)
    return episode if ok else None


# ------------------------------------------------------------------------------ workers
_WORKER: dict = {}


def make_episode_env(task: str, image_size: int, horizon: int, env_family: str = ENV_FAMILY):
    """The env the expert episodes run (and render) in: cameras are chosen per render call;
    ``env_family`` picks the reset (``kitchen``, or ``kitchen_r3m`` for R3M's, envs.variants)."""
    import envs

    return envs.make(f"{env_family}/{task}", camera=None, image_size=image_size, horizon=horizon)


def _init_worker(task: str, cameras: list[str], image_size: int, horizon: int, action_noise: float,
                 env_family: str = ENV_FAMILY) -> None:
    from envs.experts import make_expert

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER.update(env=make_episode_env(task, image_size, horizon, env_family), expert=make_expert(task),
                   cameras=cameras, horizon=horizon, action_noise=action_noise)


def _worker_episode(seed: int):
    w = _WORKER
    return seed, attempt(w["env"], w["expert"], seed, w["cameras"], w["horizon"], w["action_noise"])


def iter_attempts(task: str, cameras: Sequence[str], image_size: int, seed: int, workers: int,
                  horizon: int = 50, action_noise: float = 0.0,
                  env_family: str = ENV_FAMILY) -> Iterator[tuple[int, object]]:
    """Yield ``(seed, episode or None)`` for seeds ``seed, seed + 1, ...`` in seed order (None
    for a failed episode). With ``workers > 1`` episodes run in that many processes, each with
    its own env and renderer; the order of what is yielded does not depend on ``workers``."""
    cameras = list(cameras)
    if workers <= 1:
        from envs.experts import make_expert

        env, expert = make_episode_env(task, image_size, horizon, env_family), make_expert(task)
        try:
            s = seed
            while True:
                yield s, attempt(env, expert, s, cameras, horizon, action_noise)
                s += 1
        finally:
            env.close()
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(task, cameras, image_size, horizon, action_noise, env_family))
    pending: deque = deque()
    next_seed = seed
    try:
        while True:
            while len(pending) < 2 * workers:
                pending.append(pool.submit(_worker_episode, next_seed))
                next_seed += 1
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------ the job
@dataclass
class DemoStats:
    task: str
    cameras: list
    kept: int = 0
    attempts: int = 0
    seconds: float = 0.0
    failed_seeds: list = field(default_factory=list)
    reused: bool = False
    out: str = ""

    @property
    def success_rate(self) -> float:
        return self.kept / self.attempts if self.attempts else float("nan")


def summary_table(stats: DemoStats) -> str:
    rate = "-" if stats.reused else f"{100 * stats.success_rate:.1f}"
    cams = ",".join(stats.cameras) or "none"
    rows = [
        "| task | cameras | demos kept | attempts | expert success (%) | time (s) | file |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        f"| {stats.task} | {cams} | {stats.kept} | {stats.attempts if not stats.reused else '-'} | {rate} "
        f"| {stats.seconds:.1f} | {stats.out}{' (reused)' if stats.reused else ''} |",
    ]
    return "\n".join(rows)


def generate_demos(task: str, cameras: Sequence[str], num_demos: int, image_size: int = 224,
                   seed: int = 0, workers: int = 1, out: str | os.PathLike | None = None,
                   max_attempts: int | None = None, horizon: int = 50, action_noise: float = 0.0,
                   overwrite: bool = False,
                   progress: bool = True, return_stats: bool = False, regenerate_stale: bool = False,
                   valid_ratio: float = 0.1, split_seed: int = 0, env_family: str = ENV_FAMILY):
    """Generate ``num_demos`` successful expert demos of ``task`` into ``out``; return its path.

    ``env_family`` is the environment the expert runs in (``kitchen``; ``kitchen_r3m`` for
    R3M's reset, ``protocol=r3m``); it is recorded in the file (``env_name``) and named in the
    default file name.

    ``cameras`` may be empty (state-only demos: no rendering). An existing ``out`` generated for
    the same request (task, cameras, image size, horizon, first seed, action noise) with at least ``num_demos``
    demos is reused as is, provided its task definition and expert code fingerprint
    (:func:`definition_fingerprint`) matches the current one; a stale file raises
    :class:`StaleDemosError`, or is regenerated in place with ``regenerate_stale=True`` (the demo
    cache of the BC scripts). Raises RuntimeError when ``max_attempts`` episodes (default
    ``4 * num_demos + 20``) do not give enough successes; nothing is written then.
    """
    from robot.demos import DemoWriter

    cameras = resolve_cameras(None, cameras)
    check_request(task, cameras, num_demos, image_size, workers, horizon, action_noise)
    out = Path(out if out is not None else default_out(task, cameras, num_demos, image_size, seed, action_noise,
                                                       env_family))
    with file_lock(out):  # a second process asking for the same file waits, then reuses it
        env_args = demo_env_args(task, cameras, image_size, seed, horizon, action_noise, env_family)
        stats = DemoStats(task=task, cameras=list(cameras), out=str(out))
        if out.exists() and not overwrite:
            try:
                if reusable(out, env_args, num_demos):
                    stats.kept, stats.reused = _count_demos(out), True
                    _ensure_robomimic_fields(out, valid_ratio, split_seed)
                    return (out, stats) if return_stats else out
            except StaleDemosError as exc:
                if not regenerate_stale:
                    raise
                print(f"make_demos: {exc}; regenerating it", file=sys.stderr)
        limit = max_attempts if max_attempts is not None else 4 * num_demos + 20
        if limit < num_demos:
            raise ValueError(f"max_attempts={limit} is below num_demos={num_demos}")

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=num_demos, desc=f"{task} demos", unit="demo", file=sys.stderr)
        t0 = time.time()
        attempts = iter_attempts(task, cameras, image_size, seed, workers, horizon, action_noise, env_family)
        try:
            with DemoWriter(out, env_args, valid_ratio=valid_ratio, split_seed=split_seed) as writer:
                for s, episode in attempts:
                    stats.attempts += 1
                    if episode is None:
                        stats.failed_seeds.append(s)
                    else:
                        writer.append(episode)
                        stats.kept += 1
                        if bar is not None:
                            bar.update(1)
                    if bar is not None:
                        bar.set_postfix(attempts=stats.attempts, success=f"{stats.kept / stats.attempts:.0%}")
                    if stats.kept >= num_demos:
                        break
                    if stats.attempts >= limit:
                        raise RuntimeError(
                            f"only {stats.kept}/{num_demos} successful {task} episodes in {stats.attempts} "
                            f"attempts (seeds {seed}..{s}); the expert fails too often. Raise max_attempts "
                            f"or check the expert with `python -m envs.experts.evaluate --tasks {task}`")
        finally:
            attempts.close()
            if bar is not None:
                bar.close()
        stats.seconds = time.time() - t0
        return (out, stats) if return_stats else out


def run(cfg) -> Path:
    """Generate the demos of a composed :class:`MakeDemosConfig` and print the summary."""
    cameras = resolve_cameras(cfg.camera, list(cfg.cameras))
    path, stats = generate_demos(
        task=cfg.task, cameras=cameras, num_demos=cfg.num_demos, image_size=cfg.image_size,
        seed=cfg.seed, workers=cfg.workers, out=cfg.out, max_attempts=cfg.max_attempts,
        horizon=cfg.horizon, action_noise=cfg.action_noise, overwrite=cfg.overwrite, return_stats=True,
        valid_ratio=cfg.valid_ratio, split_seed=cfg.split_seed, env_family=cfg.env_family)
    print(summary_table(stats))
    return path
