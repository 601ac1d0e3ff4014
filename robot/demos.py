"""Demonstration files: the robomimic HDF5 layout (write + read) and readers for demos users have.

robomimic layout written and read here::

    data/                       attrs: total (int), env_args (JSON string)
      demo_0/                   attrs: num_samples (int), seed, task, + any Episode.attrs
        obs/rgb_<camera>        uint8  [T, H, W, 3]   (one per camera; several allowed)
        obs/proprio             float32 [T, 9]        arm + finger joint positions
        obs/object_state        float32 [T, 30]       see envs.kitchen_env
        actions                 float32 [T, 9]
        rewards                 float32 [T]
        dones                   uint8   [T]
        states                  float64 [T, nq + nv]  flattened [qpos, qvel] (59 for the kitchen)
        next_obs/<key>          (optional) obs shifted by one step, last repeated
      demo_1/ ...

``obs[t]`` is the observation before ``actions[t]`` (robomimic convention).

Writing is atomic: :class:`DemoWriter` writes ``<path>.partial`` and renames it to ``path`` only
on a successful ``close()``; an exception inside ``with DemoWriter(...)`` deletes the partial
file, and a killed process leaves only ``<path>.partial``, never a half-written ``path``.

Readers for demos users already have (all return :class:`Episode` lists):

- :func:`read_d4rl_kitchen`: D4RL kitchen HDF5 (``observations`` [N, 60] = robot qpos (9),
  object qpos (21), goal (30); ``actions`` [N, 9]; episodes split at ``terminals`` / ``timeouts``).
  State only: the qpos are replayed in the simulator and the requested cameras rendered.
- :func:`read_minari_kitchen`: Minari ``D4RL/kitchen-*-v2`` HDF5 (``episode_<i>`` groups with
  ``observations/observation`` [T+1, 59] = robot qpos (9), robot qvel (9), object qpos (21), object
  qvel (20), ``actions`` [T, 9], ``rewards``, ``terminations``, ``truncations``); replayed likewise.
- :func:`read_classic_pickle`: the R3M pickled demos: a list of paths, each a dict with
  ``images`` [T, H, W, 3] (or ``images_<camera>`` for several views), ``observations`` [T, D]
  (first 9 = robot joint positions), ``actions`` [T, 9]; :func:`read_classic_multiview` merges
  R3M's per-camera files ``final_paths_multiview_rb_200/<camera>/<env id>.pickle``.
"""
from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

RGB_PREFIX = "rgb_"
REQUIRED_DEMO_KEYS = ("actions", "rewards", "dones", "states", "obs")
KITCHEN_NQ, KITCHEN_NV = 30, 29  # qpos / qvel sizes of the kitchen model
ROBOMIMIC_GYM_TYPE = 2  # robomimic EnvType.GYM_TYPE: the closest existing type for gym envs
_DEMO_RE = re.compile(r"^demo_(\d+)$")


class DemoFileError(ValueError):
    """A demo file is missing, not HDF5/pickle, or laid out differently from what is expected."""


# ------------------------------------------------------------------------------------ episode
@dataclass
class Episode:
    """One demonstration; every array has the same leading length ``T``."""

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    states: np.ndarray
    seed: int | None = None
    task: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(-1)
        self.dones = np.asarray(self.dones).astype(np.uint8).reshape(-1)
        self.states = np.asarray(self.states, dtype=np.float64)
        if self.actions.ndim != 2:
            raise ValueError(f"actions must be [T, action_dim], got shape {self.actions.shape}")
        t = self.actions.shape[0]
        if t == 0:
            raise ValueError("an episode needs at least one step")
        lengths = {"rewards": len(self.rewards), "dones": len(self.dones),
                   "states": len(self.states)}
        lengths.update({f"obs/{k}": len(v) for k, v in self.obs.items()})
        bad = {k: n for k, n in lengths.items() if n != t}
        if bad:
            raise ValueError(f"episode arrays must all have length T={t} (from actions); got {bad}")
        if self.states.ndim != 2:
            raise ValueError(f"states must be [T, nq + nv], got shape {self.states.shape}")

    @property
    def num_samples(self) -> int:
        return int(self.actions.shape[0])

    @property
    def cameras(self) -> list[str]:
        return sorted(k[len(RGB_PREFIX):] for k in self.obs if k.startswith(RGB_PREFIX))


def kitchen_env_args(env_name: str, cameras: Sequence[str], image_size: int,
                     **env_kwargs) -> dict[str, Any]:
    """``env_args`` for a kitchen demo file: robomimic's keys plus the camera/task record."""
    return {
        "env_name": env_name,
        "type": ROBOMIMIC_GYM_TYPE,
        "env_kwargs": dict(env_kwargs, image_size=image_size),
        "task": env_name.split("/", 1)[-1],
        "cameras": list(cameras),
        "image_size": int(image_size),
    }


# ------------------------------------------------------------------------------------ writing
def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is in the robot extra
        raise ImportError("demo files need h5py: pip install 'egohod[robot]'") from exc
    return h5py


def _write_array(group, name: str, value: np.ndarray, compression: str | None):
    value = np.asarray(value)
    if compression and value.ndim >= 3:  # images: one chunk per frame
        group.create_dataset(name, data=value, compression=compression,
                             chunks=(1,) + value.shape[1:])
    else:
        group.create_dataset(name, data=value)


def _attr_value(value):
    if isinstance(value, (dict, list, tuple)) and not isinstance(value, np.ndarray):
        return json.dumps(value)
    return value


class DemoWriter:
    """Append episodes to a robomimic HDF5 file that appears at ``path`` only when complete.

    Usage::

        with DemoWriter(path, env_args) as writer:
            for episode in episodes:
                writer.append(episode)
        # path now exists; on an exception nothing is left at path or path.partial
    """

    def __init__(self, path: str | os.PathLike, env_args: dict[str, Any],
                 compression: str | None = "lzf", next_obs: bool = False):
        if "env_name" not in env_args:
            raise ValueError("env_args needs at least 'env_name' (see kitchen_env_args)")
        try:
            self._env_args_json = json.dumps(env_args)
        except TypeError as exc:
            raise ValueError(f"env_args must be JSON serialisable: {exc}") from exc
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.compression = compression
        self.next_obs = next_obs
        self._file = _h5py().File(self.partial_path, "w")
        self._data = self._file.create_group("data")
        self._count = 0
        self._total = 0
        self._obs_keys: set[str] | None = None

    @property
    def num_demos(self) -> int:
        return self._count

    def append(self, episode: Episode) -> str:
        """Write one episode as ``data/demo_<n>``; returns the group name."""
        if self._file is None:
            raise RuntimeError("append() after close()")
        keys = set(episode.obs)
        if self._obs_keys is None:
            self._obs_keys = keys
        elif keys != self._obs_keys:
            raise ValueError(f"episode obs keys {sorted(keys)} differ from the file's "
                             f"{sorted(self._obs_keys)}")
        name = f"demo_{self._count}"
        grp = self._data.create_group(name)
        obs_grp = grp.create_group("obs")
        for key, value in episode.obs.items():
            _write_array(obs_grp, key, value, self.compression)
        if self.next_obs:
            nxt = grp.create_group("next_obs")
            for key, value in episode.obs.items():
                value = np.asarray(value)
                _write_array(nxt, key, np.concatenate([value[1:], value[-1:]]), self.compression)
        grp.create_dataset("actions", data=episode.actions)
        grp.create_dataset("rewards", data=episode.rewards)
        grp.create_dataset("dones", data=episode.dones)
        grp.create_dataset("states", data=episode.states)
        grp.attrs["num_samples"] = episode.num_samples
        if episode.seed is not None:
            grp.attrs["seed"] = int(episode.seed)
        if episode.task is not None:
            grp.attrs["task"] = episode.task
        for key, value in episode.attrs.items():
            grp.attrs[key] = _attr_value(value)
        self._count += 1
        self._total += episode.num_samples
        return name

    def close(self) -> Path:
        """Write the file attributes, flush and move the file to ``path``."""
        if self._file is None:
            return self.path
        if self._count == 0:
            self.abort()
            raise ValueError(f"no episodes were appended; {self.path} was not written")
        self._data.attrs["total"] = self._total
        self._data.attrs["env_args"] = self._env_args_json
        self._file.close()
        self._file = None
        os.replace(self.partial_path, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.partial_path.exists():
            self.partial_path.unlink()

    def __enter__(self) -> "DemoWriter":
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def write_demos(path: str | os.PathLike, episodes: Iterable[Episode], env_args: dict[str, Any],
                compression: str | None = "lzf", next_obs: bool = False) -> Path:
    """Write ``episodes`` to ``path`` atomically (see :class:`DemoWriter`)."""
    with DemoWriter(path, env_args, compression=compression, next_obs=next_obs) as writer:
        for episode in episodes:
            writer.append(episode)
    return Path(path)


# ------------------------------------------------------------------------------------ reading
def _open_hdf5(path: str | os.PathLike):
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"demo file not found: {path}")
    if not path.is_file() or not h5py.is_hdf5(path):
        raise DemoFileError(f"{path} is not an HDF5 file")
    return h5py.File(path, "r")


def _sorted_demo_names(data_group, path) -> list[str]:
    names = [n for n in data_group.keys() if _DEMO_RE.match(n)]
    if not names:
        raise DemoFileError(f"{path}: group 'data' holds no demo_<n> groups "
                            f"(found: {sorted(data_group.keys())})")
    return sorted(names, key=lambda n: int(_DEMO_RE.match(n).group(1)))


def _decode_attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def read_env_args(path: str | os.PathLike) -> dict[str, Any]:
    """The ``data.attrs["env_args"]`` record of a robomimic demo file."""
    with _open_hdf5(path) as f:
        if "data" not in f:
            raise DemoFileError(f"{path}: no 'data' group (top-level keys: {sorted(f.keys())})")
        if "env_args" not in f["data"].attrs:
            raise DemoFileError(f"{path}: 'data' has no 'env_args' attribute")
        return json.loads(_decode_attr(f["data"].attrs["env_args"]))


def read_demos(path: str | os.PathLike, obs_keys: Sequence[str] | None = None,
               max_demos: int | None = None) -> list[Episode]:
    """Read a robomimic-layout demo file into :class:`Episode` objects.

    Args:
        path: the HDF5 file.
        obs_keys: observation keys to load (default: all). ``rgb_<camera>`` keys missing from
            the file raise an error naming the cameras the file holds.
        max_demos: read only the first ``max_demos`` demos (in ``demo_<n>`` order).
    """
    with _open_hdf5(path) as f:
        if "data" not in f:
            raise DemoFileError(f"{path}: no 'data' group; this is not a robomimic demo file "
                                f"(top-level keys: {sorted(f.keys())})")
        names = _sorted_demo_names(f["data"], path)
        if max_demos is not None:
            names = names[:max_demos]
        episodes = []
        for name in names:
            grp = f["data"][name]
            missing = [k for k in REQUIRED_DEMO_KEYS if k not in grp]
            if missing:
                raise DemoFileError(f"{path}: data/{name} lacks {missing} "
                                    f"(available keys: {sorted(grp.keys())})")
            available = sorted(grp["obs"].keys())
            keys = available if obs_keys is None else list(obs_keys)
            for key in keys:
                if key not in grp["obs"]:
                    cams = [k[len(RGB_PREFIX):] for k in available if k.startswith(RGB_PREFIX)]
                    if key.startswith(RGB_PREFIX):
                        raise DemoFileError(
                            f"{path}: camera {key[len(RGB_PREFIX):]!r} is not in the file "
                            f"(cameras in the file: {cams}; obs keys: {available})")
                    raise DemoFileError(f"{path}: data/{name}/obs has no key {key!r} "
                                        f"(available obs keys: {available})")
            attrs = {k: _decode_attr(v) for k, v in grp.attrs.items()}
            num_samples = attrs.pop("num_samples", None)
            seed = attrs.pop("seed", None)
            task = attrs.pop("task", None)
            episode = Episode(
                obs={k: grp["obs"][k][()] for k in keys},
                actions=grp["actions"][()], rewards=grp["rewards"][()],
                dones=grp["dones"][()], states=grp["states"][()],
                seed=None if seed is None else int(seed), task=task, attrs=attrs,
            )
            if num_samples is not None and int(num_samples) != episode.num_samples:
                raise DemoFileError(f"{path}: data/{name} says num_samples={num_samples} but "
                                    f"holds {episode.num_samples} actions")
            episodes.append(episode)
        return episodes


# ------------------------------------------------------------------------------------ replay
def render_state(env, state: np.ndarray, cameras: Sequence[str]) -> dict[str, np.ndarray]:
    """Set the simulator to ``state`` ([qpos, qvel]) and return the per-step observations."""
    env.set_sim_state(state)
    obs = {f"{RGB_PREFIX}{cam}": env.render_camera(cam) for cam in cameras}
    obs["proprio"] = env.data.qpos[:9].astype(np.float32)
    obs["object_state"] = env.object_state()
    return obs


def replay_states(states: np.ndarray, cameras: Sequence[str], env_name: str = "kitchen/microwave",
                  image_size: int = 224, env=None, progress: bool = False,
                  env_kwargs: dict | None = None) -> dict[str, np.ndarray]:
    """Render ``states`` [T, nq + nv] from ``cameras``: stacked obs arrays, each [T, ...].

    The kitchen is at its nominal position (no randomisation), as in the D4RL/Minari data.
    ``env_kwargs`` go to ``envs.make`` (e.g. ``mesh_detail=1.0`` for the original arm meshes).
    """
    own_env = env is None
    if own_env:
        import envs

        kwargs = dict(kitchen_noise=0.0, joint_noise=0.0)
        kwargs.update(env_kwargs or {})
        env = envs.make(env_name, camera=None, image_size=image_size, **kwargs)
        env.reset(seed=0)
    expected = env.get_sim_state().shape[0]
    if states.ndim != 2 or states.shape[1] != expected:
        raise DemoFileError(f"states must be [T, {expected}] ([qpos, qvel] of {env_name}); "
                            f"got {states.shape}")
    steps = range(len(states))
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="replay", unit="step", leave=False)
    try:
        per_step = [render_state(env, states[t], cameras) for t in steps]
    finally:
        if own_env:
            env.close()
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


def read_d4rl_kitchen(path: str | os.PathLike, cameras: Sequence[str] = ("default",),
                      image_size: int = 224, env_name: str = "kitchen/microwave",
                      task: str | None = None, max_episodes: int | None = None,
                      progress: bool = True, env_kwargs: dict | None = None) -> list[Episode]:
    """D4RL kitchen HDF5 -> pixel :class:`Episode` lists by replaying the qpos in the simulator.

    D4RL stores no velocities, so ``states`` holds the file's qpos and zero qvel.
    """
    with _open_hdf5(path) as f:
        for key in ("observations", "actions"):
            if key not in f:
                raise DemoFileError(f"{path}: not a D4RL kitchen file, no {key!r} dataset "
                                    f"(top-level keys: {sorted(f.keys())})")
        observations = f["observations"][()]
        actions = f["actions"][()]
        rewards = f["rewards"][()] if "rewards" in f else np.zeros(len(actions), np.float32)
        terminals = f["terminals"][()] if "terminals" in f else None
        timeouts = f["timeouts"][()] if "timeouts" in f else None
    nq, nv = KITCHEN_NQ, KITCHEN_NV
    if observations.ndim != 2 or observations.shape[1] < nq:
        raise DemoFileError(f"{path}: 'observations' must be [N, >= {nq}] (robot qpos 9, object "
                            f"qpos 21, ...); got shape {observations.shape}")
    if len(actions) != len(observations):
        raise DemoFileError(f"{path}: {len(observations)} observations but {len(actions)} actions")
    bounds = _split_points(len(actions), terminals, timeouts)
    if max_episodes is not None:
        bounds = bounds[:max_episodes]
    episodes = []
    for i, (a, b) in enumerate(bounds):
        states = np.concatenate([observations[a:b, :nq], np.zeros((b - a, nv))], axis=1)
        obs = replay_states(states, cameras, env_name, image_size, progress=progress,
                            env_kwargs=env_kwargs)
        dones = np.zeros(b - a, np.uint8)
        dones[-1] = 1
        episodes.append(Episode(obs=obs, actions=actions[a:b], rewards=rewards[a:b], dones=dones,
                                states=states, task=task,
                                attrs={"source": "d4rl", "source_file": str(path),
                                       "source_range": [a, b]}))
    return episodes


def read_minari_kitchen(path: str | os.PathLike, cameras: Sequence[str] = ("default",),
                        image_size: int = 224, env_name: str = "kitchen/microwave",
                        task: str | None = None, max_episodes: int | None = None,
                        progress: bool = True, env_kwargs: dict | None = None) -> list[Episode]:
    """Minari kitchen HDF5 (FrankaKitchen-v1 observations) -> pixel :class:`Episode` lists."""
    with _open_hdf5(path) as f:
        names = [n for n in f.keys() if re.match(r"^episode_\d+$", n)]
        if not names:
            raise DemoFileError(f"{path}: not a Minari file, no episode_<i> groups "
                                f"(top-level keys: {sorted(f.keys())})")
        names.sort(key=lambda n: int(n.split("_")[1]))
        if max_episodes is not None:
            names = names[:max_episodes]
        raw = []
        for name in names:
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
            raw.append((name, o[()], grp["actions"][()],
                        grp["rewards"][()] if "rewards" in grp else None,
                        grp["terminations"][()] if "terminations" in grp else None))
    episodes = []
    for name, o, actions, rewards, terminations in raw:
        t = len(actions)
        if o.ndim != 2 or o.shape[1] != 59 or len(o) not in (t, t + 1):
            raise DemoFileError(f"{path}: {name}/observations must be [T+1, 59] (FrankaKitchen-v1:"
                                f" robot qpos 9, qvel 9, object qpos 21, qvel 20) for T={t} "
                                f"actions; got {o.shape}")
        o = o[:t]
        qpos = np.concatenate([o[:, 0:9], o[:, 18:39]], axis=1)
        qvel = np.concatenate([o[:, 9:18], o[:, 39:59]], axis=1)
        states = np.concatenate([qpos, qvel], axis=1)
        obs = replay_states(states, cameras, env_name, image_size, progress=progress,
                            env_kwargs=env_kwargs)
        dones = np.zeros(t, np.uint8) if terminations is None else \
            np.asarray(terminations, bool).astype(np.uint8)
        dones[-1] = 1
        episodes.append(Episode(obs=obs, actions=actions,
                                rewards=np.zeros(t) if rewards is None else rewards,
                                dones=dones, states=states, task=task,
                                attrs={"source": "minari", "source_file": str(path),
                                       "source_episode": name}))
    return episodes


# R3M's classic layout: <root>/final_paths_multiview_rb_200/<camera dir>/<env id>.pickle
CLASSIC_CAMERA_DIRS = {"default": "default", "left_cap2": "left", "right_cap2": "right"}
CLASSIC_TASK_IDS = {
    "kitchen_micro_open-v3": "microwave",
    "kitchen_sdoor_open-v3": "slide_cabinet",
    "kitchen_ldoor_open-v3": "hinge_cabinet",
    "kitchen_light_on-v3": "light_switch",
    "kitchen_knob1_on-v3": "knob",
}


def _load_classic_paths(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"demo file not found: {path}")
    try:
        with open(path, "rb") as fh:
            paths = pickle.load(fh)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise DemoFileError(f"{path} is not a readable pickle of demo paths: {exc}") from exc
    if isinstance(paths, dict):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise DemoFileError(f"{path}: expected a non-empty list of path dicts, got "
                            f"{type(paths).__name__}")
    return list(paths)


def read_classic_pickle(path: str | os.PathLike, camera: str | None = None,
                        task: str | None = None) -> list[Episode]:
    """R3M-style pickled demos -> :class:`Episode` lists (no simulator needed).

    Each path holds ``images`` [T, H, W, 3] (stored as ``rgb_<camera>``) and/or
    ``images_<cam>`` keys for several views, ``observations`` [T, D] (first 9 = robot joint
    positions -> ``proprio``) and ``actions`` [T, 9]. ``states`` is the full ``observations``
    array (the classic files do not hold the simulator state).

    ``camera`` defaults to the file's folder in R3M's layout (``left_cap2`` -> ``left``,
    ``right_cap2`` -> ``right``, ``default``); ``task`` to the task of R3M's env id file name
    (``kitchen_micro_open-v3.pickle`` -> ``microwave``, see ``CLASSIC_TASK_IDS``).
    """
    path = Path(path)
    paths = _load_classic_paths(path)
    if camera is None:
        camera = CLASSIC_CAMERA_DIRS.get(path.parent.name)
    if task is None:
        task = CLASSIC_TASK_IDS.get(path.stem)
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
                                       "source_path": i}))
    return episodes


def read_classic_multiview(root: str | os.PathLike, env_id: str,
                           cameras: Sequence[str] = ("default", "left_cap2", "right_cap2"),
                           ) -> list[Episode]:
    """Merge R3M's per-camera pickles ``<root>/<camera dir>/<env_id>.pickle`` into episodes
    holding one ``rgb_<camera>`` per view (the paths of each file must be the same demos)."""
    root = Path(root)
    per_camera = {}
    for cam_dir in cameras:
        cam = CLASSIC_CAMERA_DIRS.get(cam_dir, cam_dir)
        per_camera[cam] = read_classic_pickle(root / cam_dir / f"{env_id}.pickle", camera=cam)
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
