"""Demonstrations users already have -> :class:`robot.demos.Episode` lists or robomimic files.

- D4RL kitchen HDF5 (``observations`` [N, 60] = robot qpos (9), object qpos (21), goal (30);
  ``actions`` [N, 9]; ``rewards``; episodes end at ``terminals`` / ``timeouts``). State only:
  the qpos are replayed in the simulator (zero velocities: D4RL stores none) and the requested
  cameras rendered.
- Minari ``D4RL/kitchen-*-v2`` HDF5 (``episode_<i>`` groups with ``observations/observation``
  [T+1, 59] = robot qpos (9), robot qvel (9), object qpos (21), object qvel (20), ``actions``
  [T, 9], ``rewards``, ``terminations``, ``truncations``); replayed likewise.
- R3M's pickled demos (``final_paths_multiview_rb_200/<camera>/<env id>.pickle``: a list of
  paths with ``images`` [T, H, W, 3], ``observations`` [T, D] (first 9 = robot joint
  positions), ``actions`` [T, 9], ``rewards``), one file per camera.

Replay renders with the kitchen at its nominal place (no randomisation), one environment for
the whole file; the ``iter_*`` readers stream episodes so that big files can be converted
without holding every frame in memory:

    python -m robot.demo_sources convert kitchen_mixed-v0.hdf5 out.hdf5 --cameras left right
    python -m robot.demo_sources info out.hdf5
    python -m robot.demo_sources robomimic-fields old.hdf5 --valid-ratio 0.1   # add next_obs + masks
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from robot.demos import (RGB_PREFIX, DemoFileError, DemoWriter, Episode, _open_hdf5,
                         add_robomimic_fields, kitchen_env_args, read_demos, read_env_args)

KITCHEN_NQ, KITCHEN_NV = 30, 29  # qpos / qvel sizes of the kitchen model


def render_state(env, state: np.ndarray, cameras: Sequence[str]) -> dict[str, np.ndarray]:
    """Set the simulator to ``state`` ([qpos, qvel]) and return that step's observations."""
    env.set_sim_state(state)
    obs = {f"{RGB_PREFIX}{cam}": env.render_camera(cam) for cam in cameras}
    obs["proprio"] = env.data.qpos[:9].astype(np.float32)
    obs["object_state"] = env.object_state()
    return obs


def make_replay_env(env_name: str = "kitchen/microwave", image_size: int = 224,
                    env_kwargs: dict | None = None):
    """An environment for replaying recorded states: kitchen at its nominal place, no noise."""
    import envs

    kwargs = dict(kitchen_noise=0.0, joint_noise=0.0)
    kwargs.update(env_kwargs or {})
    env = envs.make(env_name, camera=None, image_size=image_size, **kwargs)
    env.reset(seed=0)
    return env


def replay_states(env, states: np.ndarray, cameras: Sequence[str]) -> dict[str, np.ndarray]:
    """Render ``states`` [T, nq + nv] from ``cameras``: stacked obs arrays, each [T, ...]."""
    expected = env.get_sim_state().shape[0]
    if states.ndim != 2 or states.shape[1] != expected:
        raise DemoFileError(f"states must be [T, {expected}] ([qpos, qvel] of the kitchen); "
                            f"got {states.shape}")
    per_step = [render_state(env, state, cameras) for state in states]
    return {k: np.stack([o[k] for o in per_step]) for k in per_step[0]}


def _split_points(n: int, *flags: np.ndarray | None) -> list[tuple[int, int]]:
    ends = np.zeros(n, dtype=bool)
    for flag in flags:
        if flag is not None:
            ends |= np.asarray(flag, dtype=bool).reshape(-1)[:n]
    ends[-1] = True
    bounds, start = [], 0
    for end in np.flatnonzero(ends):
        bounds.append((start, int(end) + 1))
        start = int(end) + 1
    return bounds


def _d4rl_episodes(path) -> Iterator[tuple[dict, np.ndarray]]:
    """(metadata, states) of each D4RL episode, read lazily."""
    with _open_hdf5(path) as f:
        for key in ("observations", "actions"):
            if key not in f:
                raise DemoFileError(f"{path}: not a D4RL kitchen file, no {key!r} dataset "
                                    f"(top-level keys: {sorted(f.keys())})")
        obs_ds, act_ds = f["observations"], f["actions"]
        if len(obs_ds.shape) != 2 or obs_ds.shape[1] < KITCHEN_NQ:
            raise DemoFileError(f"{path}: 'observations' must be [N, >= {KITCHEN_NQ}] (robot qpos "
                                f"9, object qpos 21, ...); got shape {obs_ds.shape}")
        if act_ds.shape[0] != obs_ds.shape[0]:
            raise DemoFileError(f"{path}: {obs_ds.shape[0]} observations but {act_ds.shape[0]} "
                                "actions")
        n = act_ds.shape[0]
        rewards = f["rewards"][()] if "rewards" in f else np.zeros(n, np.float32)
        bounds = _split_points(n, f["terminals"][()] if "terminals" in f else None,
                               f["timeouts"][()] if "timeouts" in f else None)
        for a, b in bounds:
            qpos = obs_ds[a:b, :KITCHEN_NQ]
            states = np.concatenate([qpos, np.zeros((b - a, KITCHEN_NV))], axis=1)
            yield {"actions": act_ds[a:b], "rewards": rewards[a:b], "dones": None,
                   "attrs": {"source": "d4rl", "source_file": str(path),
                             "source_range": [a, b]}}, states


def _minari_episodes(path) -> Iterator[tuple[dict, np.ndarray]]:
    """(metadata, states) of each Minari episode, read lazily."""
    with _open_hdf5(path) as f:
        names = [n for n in f.keys() if re.match(r"^episode_\d+$", n)]
        if not names:
            raise DemoFileError(f"{path}: not a Minari file, no episode_<i> groups "
                                f"(top-level keys: {sorted(f.keys())})")
        for name in sorted(names, key=lambda n: int(n.split("_")[1])):
            grp = f[name]
            for key in ("observations", "actions"):
                if key not in grp:
                    raise DemoFileError(f"{path}: {name} lacks {key!r} "
                                        f"(available keys: {sorted(grp.keys())})")
            o = grp["observations"]
            if hasattr(o, "keys"):  # Dict observation space
                if "observation" not in o:
                    raise DemoFileError(f"{path}: {name}/observations lacks 'observation' "
                                        f"(available keys: {sorted(o.keys())})")
                o = o["observation"]
            o, actions = o[()], grp["actions"][()]
            t = len(actions)
            if o.ndim != 2 or o.shape[1] != 59 or len(o) not in (t, t + 1):
                raise DemoFileError(f"{path}: {name}/observations must be [T+1, 59] "
                                    "(FrankaKitchen-v1: robot qpos 9, qvel 9, object qpos 21, "
                                    f"qvel 20) for T={t} actions; got {o.shape}")
            o = o[:t]  # obs[t] is the observation before actions[t]
            qpos = np.concatenate([o[:, 0:9], o[:, 18:39]], axis=1)
            qvel = np.concatenate([o[:, 9:18], o[:, 39:59]], axis=1)
            dones = grp["terminations"][()] if "terminations" in grp else None
            yield {"actions": actions,
                   "rewards": grp["rewards"][()] if "rewards" in grp else np.zeros(t),
                   "dones": dones,
                   "attrs": {"source": "minari", "source_file": str(path),
                             "source_episode": name}}, np.concatenate([qpos, qvel], axis=1)


def _iter_replayed(raw: Iterator[tuple[dict, np.ndarray]], cameras, image_size, env_name, task,
                   max_episodes, env_kwargs) -> Iterator[Episode]:
    env = None
    try:
        for i, (meta, states) in enumerate(raw):
            if max_episodes is not None and i >= max_episodes:
                break
            if env is None:
                env = make_replay_env(env_name, image_size, env_kwargs)
            obs = replay_states(env, states, cameras)
            t = len(states)
            dones = np.zeros(t, np.uint8) if meta["dones"] is None else \
                np.asarray(meta["dones"], bool).astype(np.uint8)
            dones[-1] = 1
            yield Episode(obs=obs, actions=meta["actions"], rewards=meta["rewards"], dones=dones,
                          states=states, task=task, attrs=meta["attrs"])
    finally:
        if env is not None:
            env.close()


def iter_d4rl_kitchen(path, cameras: Sequence[str] = ("default",), image_size: int = 224,
                      env_name: str = "kitchen/microwave", task: str | None = None,
                      max_episodes: int | None = None,
                      env_kwargs: dict | None = None) -> Iterator[Episode]:
    """Stream D4RL kitchen episodes as pixel :class:`Episode` objects (replayed qpos, zero qvel:
    D4RL stores no velocities). Episodes end at ``terminals`` or ``timeouts``."""
    return _iter_replayed(_d4rl_episodes(path), cameras, image_size, env_name, task,
                          max_episodes, env_kwargs)


def iter_minari_kitchen(path, cameras: Sequence[str] = ("default",), image_size: int = 224,
                        env_name: str = "kitchen/microwave", task: str | None = None,
                        max_episodes: int | None = None,
                        env_kwargs: dict | None = None) -> Iterator[Episode]:
    """Stream Minari kitchen episodes (FrankaKitchen-v1 observations) as pixel episodes."""
    return _iter_replayed(_minari_episodes(path), cameras, image_size, env_name, task,
                          max_episodes, env_kwargs)


def read_d4rl_kitchen(path, cameras: Sequence[str] = ("default",), image_size: int = 224,
                      env_name: str = "kitchen/microwave", task: str | None = None,
                      max_episodes: int | None = None,
                      env_kwargs: dict | None = None) -> list[Episode]:
    """All episodes of :func:`iter_d4rl_kitchen` in memory (use the iterator for big files)."""
    return list(iter_d4rl_kitchen(path, cameras, image_size, env_name, task, max_episodes,
                                  env_kwargs))


def read_minari_kitchen(path, cameras: Sequence[str] = ("default",), image_size: int = 224,
                        env_name: str = "kitchen/microwave", task: str | None = None,
                        max_episodes: int | None = None,
                        env_kwargs: dict | None = None) -> list[Episode]:
    """All episodes of :func:`iter_minari_kitchen` in memory."""
    return list(iter_minari_kitchen(path, cameras, image_size, env_name, task, max_episodes,
                                    env_kwargs))


# R3M's classic layout: <root>/final_paths_multiview_rb_200/<camera dir>/<env id>.pickle.
# Frames keep R3M's camera names: left_cap2 / right_cap2 are cameras of this package too
# (envs.cameras.R3M_MODEL_CAMERAS, protocol=r3m); R3M's "default" view (mujoco_py's free camera)
# has no counterpart here, so its frames are named r3m_default and match no env camera.
CLASSIC_CAMERA_DIRS = {"default": "r3m_default", "left_cap2": "left_cap2", "right_cap2": "right_cap2"}
# R3M env ids whose task this package defines with the same joint, direction and success rule
# (microwave: same joint and direction; its goal is this model's reachable -0.75 rad instead of
# -1.25, and R3M's door passes through it; docs/robot_protocol.md).
CLASSIC_TASK_IDS = {
    "kitchen_micro_open-v3": "microwave",
    "kitchen_sdoor_open-v3": "slide_cabinet",
    "kitchen_light_on-v3": "light_switch",
    "kitchen_knob1_on-v3": "knob",
}
# R3M env ids this package defines differently: converting them needs an explicit task_map entry.
CLASSIC_TASKS_DEFINED_DIFFERENTLY = {
    "kitchen_ldoor_open-v3": ("opens the LEFT hinged door (leftdoorhinge to -1.25 rad), which this arm cannot "
                              "reach here; this package's hinge_cabinet opens the RIGHT door", "hinge_cabinet"),
}


def classic_task(env_id: str, task_map: dict[str, str] | None = None) -> str | None:
    """This package's task for R3M env id ``env_id`` (a pickle's file name): ``task_map`` first,
    then :data:`CLASSIC_TASK_IDS`; an id in :data:`CLASSIC_TASKS_DEFINED_DIFFERENTLY` is an error
    unless ``task_map`` names it; an unknown id gives None (pass ``task=``)."""
    task_map = dict(task_map or {})
    if env_id in task_map:
        return task_map[env_id]
    if env_id in CLASSIC_TASK_IDS:
        return CLASSIC_TASK_IDS[env_id]
    if env_id in CLASSIC_TASKS_DEFINED_DIFFERENTLY:
        why, closest = CLASSIC_TASKS_DEFINED_DIFFERENTLY[env_id]
        raise DemoFileError(f"R3M task {env_id} {why}: its demos would train one task and be evaluated on "
                            f"another. To use them anyway, name the mapping: task_map={{'{env_id}': '{closest}'}} "
                            f"(command line: --map {env_id}={closest})")
    return None


def _load_classic_paths(path: Path, trust_pickle: bool = False) -> list[dict]:
    """The path dicts of an R3M pickle, read by :func:`egohod.safe_load.load_pickle` (numpy
    arrays, numbers, strings, lists and dicts; anything else is refused unless ``trust_pickle``)."""
    from egohod.safe_load import CorruptFileError, load_pickle

    if not path.exists():
        raise FileNotFoundError(f"demo file not found: {path}")
    try:
        paths = load_pickle(path, trust_pickle=trust_pickle, what="R3M demo pickle")
    except CorruptFileError as exc:
        raise DemoFileError(str(exc)) from None
    if isinstance(paths, dict):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise DemoFileError(f"{path}: expected a non-empty list of path dicts, got "
                            f"{type(paths).__name__}")
    return list(paths)


def read_classic_pickle(path: str | os.PathLike, camera: str | None = None,
                        task: str | None = None, trust_pickle: bool = False,
                        task_map: dict[str, str] | None = None) -> list[Episode]:
    """R3M-style pickled demos -> :class:`Episode` lists (no simulator needed).

    Each path holds ``images`` [T, H, W, 3] (stored as ``rgb_<camera>``) and/or
    ``images_<cam>`` keys for several views, ``observations`` [T, D] (first 9 = robot joint
    positions -> ``proprio``) and ``actions`` [T, 9]. ``states`` is the full ``observations``
    array (the classic files do not hold the simulator state).

    ``camera`` defaults to the file's folder in R3M's layout (``CLASSIC_CAMERA_DIRS``:
    ``left_cap2``, ``right_cap2``, ``default`` -> ``r3m_default``); ``task`` to the task of R3M's
    env id file name (:func:`classic_task`: ``kitchen_micro_open-v3.pickle`` -> ``microwave``;
    ``kitchen_ldoor_open-v3`` is an error unless ``task_map`` names its task). A file of a task
    defined differently here is refused even with ``task=`` unless ``task_map`` names it.
    ``trust_pickle=True`` unpickles without egohod's allowlist (only for files you trust).
    """
    path = Path(path)
    mapped = classic_task(path.stem, task_map)  # before unpickling: a refused task costs nothing
    if task is None:
        task = mapped
    paths = _load_classic_paths(path, trust_pickle)
    if camera is None:
        camera = CLASSIC_CAMERA_DIRS.get(path.parent.name)
    episodes = []
    for i, p in enumerate(paths):
        if not isinstance(p, dict):
            raise DemoFileError(f"{path}: path {i} is a {type(p).__name__}, expected a dict")
        image_keys = [k for k in p if k == "images" or k.startswith("images_")]
        missing = [k for k in ("observations", "actions") if k not in p]
        if missing or not image_keys:
            raise DemoFileError(f"{path}: path {i} lacks {missing or ['images']} "
                                f"(keys: {sorted(p)})")
        if "images" in p and camera is None:
            raise DemoFileError(f"{path}: cannot tell which camera 'images' comes from (the "
                                f"folder is not one of {sorted(CLASSIC_CAMERA_DIRS)}); pass camera=")
        observations = np.asarray(p["observations"], dtype=np.float64)
        if observations.ndim != 2 or observations.shape[1] < 9:
            raise DemoFileError(f"{path}: path {i} observations must be [T, >= 9], got "
                                f"{observations.shape}")
        obs = {}
        for key in image_keys:
            cam = camera if key == "images" else key[len("images_"):]
            images = np.asarray(p[key])
            if images.ndim != 4 or images.shape[-1] != 3:
                raise DemoFileError(f"{path}: path {i} {key} must be [T, H, W, 3], got "
                                    f"{images.shape}")
            obs[f"{RGB_PREFIX}{cam}"] = images.astype(np.uint8)
        obs["proprio"] = observations[:, :9].astype(np.float32)
        t = len(p["actions"])
        rewards = np.asarray(p.get("rewards", np.zeros(t)), dtype=np.float32)
        dones = np.zeros(t, np.uint8)
        dones[-1] = 1
        episodes.append(Episode(obs=obs, actions=p["actions"], rewards=rewards, dones=dones,
                                states=observations, task=task,
                                attrs={"source": "classic_pickle", "source_file": str(path),
                                       "source_path": i, "source_task": path.stem}))
    return episodes


def read_classic_multiview(root: str | os.PathLike, env_id: str,
                           cameras: Sequence[str] = ("default", "left_cap2", "right_cap2"),
                           trust_pickle: bool = False, task_map: dict[str, str] | None = None) -> list[Episode]:
    """Merge R3M's per-camera pickles ``<root>/<camera dir>/<env_id>.pickle`` into episodes
    holding one ``rgb_<camera>`` per view (the paths of each file must be the same demos)."""
    root = Path(root)
    per_camera = {}
    for cam_dir in cameras:
        cam = CLASSIC_CAMERA_DIRS.get(cam_dir, cam_dir)
        per_camera[cam] = read_classic_pickle(root / cam_dir / f"{env_id}.pickle", camera=cam,
                                              trust_pickle=trust_pickle, task_map=task_map)
    first_cam, first = next(iter(per_camera.items()))
    merged = []
    for i, episode in enumerate(first):
        obs = dict(episode.obs)
        for cam, episodes in per_camera.items():
            if cam == first_cam:
                continue
            if len(episodes) != len(first):
                raise DemoFileError(f"{root}: {len(episodes)} demos for camera {cam!r} but "
                                    f"{len(first)} for {first_cam!r}")
            other = episodes[i]
            if other.num_samples != episode.num_samples or not np.allclose(other.actions,
                                                                           episode.actions):
                raise DemoFileError(f"{root}: demo {i} differs between cameras {first_cam!r} and "
                                    f"{cam!r} (actions or length): not the same demonstrations")
            obs[f"{RGB_PREFIX}{cam}"] = other.obs[f"{RGB_PREFIX}{cam}"]
        merged.append(Episode(obs=obs, actions=episode.actions, rewards=episode.rewards,
                              dones=episode.dones, states=episode.states, task=episode.task,
                              attrs=dict(episode.attrs, source_file=str(root))))
    return merged


# ------------------------------------------------------------------------------------ convert
FORMATS = ("robomimic", "d4rl", "minari", "classic_pickle")


def detect_demo_format(path: str | os.PathLike) -> str:
    """One of :data:`FORMATS`, from the file's content (not its name)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"demo file not found: {path}")
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
        if "data" in keys:
            return "robomimic"
        if "observations" in keys and "actions" in keys:
            return "d4rl"
        if any(re.match(r"^episode_\d+$", k) for k in keys):
            return "minari"
        raise DemoFileError(f"{path}: HDF5 file in no known demo layout (top-level keys: "
                            f"{sorted(keys)}); expected 'data' (robomimic), 'observations' + "
                            "'actions' (D4RL) or 'episode_<i>' groups (Minari)")
    with open(path, "rb") as fh:
        head = fh.read(1)
    if head == b"\x80" or path.suffix in (".pkl", ".pickle"):  # protocol >= 2 starts with 0x80
        return "classic_pickle"
    raise DemoFileError(f"{path} is neither HDF5 nor a pickle (.pkl / .pickle)")


def iter_any_demos(path, cameras: Sequence[str] = ("default",), image_size: int = 224,
                   env_name: str = "kitchen/microwave", task: str | None = None,
                   max_episodes: int | None = None, camera: str | None = None,
                   env_kwargs: dict | None = None, trust_pickle: bool = False,
                   task_map: dict[str, str] | None = None) -> Iterator[Episode]:
    """Episodes of a demo file in any supported format (see :func:`detect_demo_format`)."""
    fmt = detect_demo_format(path)
    if fmt == "robomimic":
        yield from read_demos(path, max_demos=max_episodes)
    elif fmt == "d4rl":
        yield from iter_d4rl_kitchen(path, cameras, image_size, env_name, task, max_episodes,
                                     env_kwargs)
    elif fmt == "minari":
        yield from iter_minari_kitchen(path, cameras, image_size, env_name, task, max_episodes,
                                       env_kwargs)
    else:
        yield from read_classic_pickle(path, camera=camera, task=task, trust_pickle=trust_pickle,
                                       task_map=task_map)[:max_episodes]


def convert_demos(src, dst, cameras: Sequence[str] = ("default",), image_size: int = 224,
                  env_name: str | None = None, task: str | None = None,
                  max_episodes: int | None = None, camera: str | None = None,
                  env_kwargs: dict | None = None, progress: bool = True, trust_pickle: bool = False,
                  valid_ratio: float = 0.1, split_seed: int = 0, task_map: dict[str, str] | None = None) -> dict:
    """Convert a demo file of any supported format to robomimic HDF5 at ``dst`` (atomic,
    streamed episode by episode), with ``next_obs`` and a seeded ``mask/train`` / ``mask/valid``
    split (``valid_ratio``, ``split_seed``) so robomimic reads it with its defaults. Returns a
    summary (format, demos, samples, cameras, split sizes).

    ``env_name`` (recorded in the file; the env used to replay state-only files) defaults to
    ``kitchen_r3m/<task>`` for R3M pickles (recorded in R3M's environment) and to
    ``kitchen/microwave`` otherwise. ``task_map`` names the task of an R3M env id this package
    defines differently (see :func:`classic_task`)."""
    fmt = detect_demo_format(src)
    if env_name is None and fmt == "classic_pickle":
        mapped = task or classic_task(Path(src).stem, task_map)
        env_name = f"kitchen_r3m/{mapped}" if mapped else "kitchen/microwave"
    env_name = env_name or "kitchen/microwave"
    episodes = iter_any_demos(src, cameras, image_size, env_name, task, max_episodes, camera,
                              env_kwargs, trust_pickle=trust_pickle, task_map=task_map)
    first = next(episodes, None)
    if first is None:
        raise DemoFileError(f"{src}: no episodes to convert")
    if progress:
        from tqdm import tqdm

        episodes = tqdm(episodes, desc=f"convert {Path(src).name}", unit="demo",
                        initial=1)
    # record the cameras the file really holds (a pickle brings its own)
    frame = next((v for k, v in first.obs.items() if k.startswith(RGB_PREFIX)), None)
    size = int(frame.shape[1]) if frame is not None else image_size
    env_args = kitchen_env_args(env_name, first.cameras, size, **(env_kwargs or {}))
    env_args["source"] = {"file": str(src), "format": fmt}
    with DemoWriter(dst, env_args, valid_ratio=valid_ratio, split_seed=split_seed) as writer:
        writer.append(first)
        for episode in episodes:
            writer.append(episode)
        summary = {"format": fmt, "demos": writer.num_demos, "samples": writer.num_samples,
                   "obs_keys": writer.obs_keys, "out": str(dst)}
    return summary


def describe_demo_file(path) -> dict:
    """Format, number of demos/samples and observation shapes of a demo file."""
    fmt = detect_demo_format(path)
    info: dict = {"file": str(path), "format": fmt}
    if fmt == "robomimic":
        import h5py

        with h5py.File(path, "r") as f:
            data = f["data"]
            names = sorted(k for k in data.keys() if k.startswith("demo_"))
            info["demos"] = len(names)
            info["total"] = int(data.attrs.get("total", -1))
            info["masks"] = {k: len(f["mask"][k]) for k in f["mask"]} if "mask" in f else {}
            info["next_obs"] = bool(names) and "next_obs" in data[names[0]]
            if names:
                obs = data[names[0]]["obs"]
                info["obs"] = {k: [list(obs[k].shape[1:]), str(obs[k].dtype)] for k in obs}
        info["env_args"] = read_env_args(path)
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot.demo_sources",
                                     description="Inspect or convert kitchen demo files.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="format and contents of a demo file")
    p_info.add_argument("path")
    p_conv = sub.add_parser("convert", help="D4RL / Minari / R3M pickle -> robomimic HDF5")
    p_conv.add_argument("src")
    p_conv.add_argument("dst")
    p_conv.add_argument("--cameras", nargs="+", default=["default"],
                        help="cameras to render for state-only files (D4RL, Minari)")
    p_conv.add_argument("--camera", default=None, help="camera of a single-view R3M pickle")
    p_conv.add_argument("--image-size", type=int, default=224)
    p_conv.add_argument("--env", default=None,
                        help="registered env recorded in the file / used to replay (default: kitchen_r3m/<task> "
                             "for R3M pickles, kitchen/microwave otherwise)")
    p_conv.add_argument("--task", default=None)
    p_conv.add_argument("--map", action="append", default=[], metavar="R3M_ENV_ID=TASK",
                        help="task of an R3M env id this package defines differently, e.g. "
                             "kitchen_ldoor_open-v3=hinge_cabinet (LEFT door demos used for the RIGHT door task)")
    p_conv.add_argument("--max-episodes", type=int, default=None)
    p_conv.add_argument("--valid-ratio", type=float, default=0.1,
                        help="fraction of demos in mask/valid (seeded split)")
    p_conv.add_argument("--split-seed", type=int, default=0)
    p_conv.add_argument("--trust-pickle", action="store_true",
                        help="unpickle an R3M pickle without egohod's allowlist (only files you trust)")
    p_fields = sub.add_parser("robomimic-fields",
                              help="add next_obs and a new mask/train + mask/valid split to a file")
    p_fields.add_argument("path")
    p_fields.add_argument("--valid-ratio", type=float, default=0.1)
    p_fields.add_argument("--split-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "info":
        print(json.dumps(describe_demo_file(args.path), indent=2))
    elif args.command == "robomimic-fields":
        split = add_robomimic_fields(args.path, args.valid_ratio, args.split_seed)
        print(json.dumps({"file": args.path, "train": len(split["train"]),
                          "valid": len(split["valid"])}, indent=2))
    else:
        task_map = {}
        for item in args.map:
            if "=" not in item:
                parser.error(f"--map {item!r}: expected R3M_ENV_ID=TASK, e.g. kitchen_ldoor_open-v3=hinge_cabinet")
            key, value = item.split("=", 1)
            task_map[key] = value
        summary = convert_demos(args.src, args.dst, args.cameras, args.image_size, args.env,
                                args.task, args.max_episodes, args.camera, trust_pickle=args.trust_pickle,
                                valid_ratio=args.valid_ratio, split_seed=args.split_seed, task_map=task_map)
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
