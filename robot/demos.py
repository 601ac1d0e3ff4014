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
        next_obs/<key>          obs shifted by one step, last repeated (virtual datasets
                                that read ``obs/<key>``: no second copy of the frames)
      demo_1/ ...
    mask/train, mask/valid      demo names (bytes) of a seeded train/valid split

``obs[t]`` is the observation before ``actions[t]`` (robomimic convention). ``next_obs`` and
``mask/*`` are what robomimic's ``SequenceDataset`` reads: ``next_obs`` with its default config
(``hdf5_load_next_obs=True``), the masks with ``hdf5_filter_key="train"`` /
``hdf5_validation_filter_key="valid"``; :func:`add_robomimic_fields` adds both to a file written
without them (older files).

Writing is atomic: :class:`DemoWriter` writes ``<path>.partial-<pid>`` and renames it to ``path``
only on a successful ``close()``; an exception inside ``with DemoWriter(...)`` deletes the partial
file, and a killed process leaves only its partial file, never a half-written ``path`` (the next
writer of ``path`` removes partial files whose process is gone). Two processes writing the same
``path`` at once do not collide: each has its own partial file and the last rename wins.

Readers for demos users already have (D4RL, Minari, R3M pickles) live in
:mod:`robot.demo_sources` and are re-exported here (``robot.demos.read_d4rl_kitchen`` etc.).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

RGB_PREFIX = "rgb_"
REQUIRED_DEMO_KEYS = ("actions", "rewards", "dones", "states", "obs")
# robomimic env type of the kitchen envs: robot.integrations.robomimic registers it with
# robomimic's env factory (robomimic's own types are 1 robosuite, 2 gym, 3 iGibson)
KITCHEN_ENV_TYPE = 101
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
    """``env_args`` for a kitchen demo file: robomimic's keys (``env_kwargs`` are what
    ``robot.integrations.robomimic.EnvKitchen`` takes) plus the camera/task record."""
    return {
        "env_name": env_name,
        "type": KITCHEN_ENV_TYPE,
        "env_kwargs": dict(env_kwargs, image_size=int(image_size), cameras=list(cameras)),
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


def partial_path(path: str | os.PathLike, pid: int | None = None) -> Path:
    """Where the process ``pid`` (default: this one) writes ``path`` before renaming it."""
    path = Path(path)
    return path.with_name(f"{path.name}.partial-{os.getpid() if pid is None else pid}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete partial files of ``path`` left by processes that no longer run; returns them."""
    path = Path(path)
    removed = []
    for p in path.parent.glob(f"{path.name}.partial-*"):
        pid = p.name.rsplit("-", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def split_demos(names: Sequence[str], valid_ratio: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded train/valid split of demo names: ``round(valid_ratio * n)`` validation demos
    (at least one when ``valid_ratio > 0`` and there are two demos or more; never all of them)."""
    if not 0.0 <= valid_ratio < 1.0:
        raise ValueError(f"valid_ratio must be in [0, 1), got {valid_ratio}")
    n = len(names)
    num_valid = 0
    if valid_ratio > 0 and n >= 2:
        num_valid = min(max(int(round(valid_ratio * n)), 1), n - 1)
    order = np.random.default_rng([int(seed), 0x5B117]).permutation(n)
    valid = set(order[:num_valid].tolist())
    return ([m for i, m in enumerate(names) if i not in valid],
            [m for i, m in enumerate(names) if i in valid])


def write_split_masks(h5file, valid_ratio: float, seed: int) -> dict[str, list[str]]:
    """(Re)write ``mask/train`` and ``mask/valid`` of an open demo file; returns the split."""
    names = _sorted_demo_names(h5file["data"], h5file.filename)
    train, valid = split_demos(names, valid_ratio, seed)
    mask = h5file.require_group("mask")
    for key, demos in (("train", train), ("valid", valid)):
        if key in mask:
            del mask[key]
        mask.create_dataset(key, data=np.array(demos, dtype="S"))
    mask.attrs["valid_ratio"] = float(valid_ratio)
    mask.attrs["split_seed"] = int(seed)
    return {"train": train, "valid": valid}


def write_next_obs(demo_group) -> None:
    """``next_obs/<key>`` for every ``obs/<key>`` of a demo group: ``obs[1:]`` then the last
    observation again, as HDF5 virtual datasets reading ``obs`` in the same file."""
    h5py = _h5py()
    obs = demo_group["obs"]
    nxt = demo_group.require_group("next_obs")
    for key in obs:
        src_ds = obs[key]
        if key in nxt:
            del nxt[key]
        t = src_ds.shape[0]
        layout = h5py.VirtualLayout(shape=src_ds.shape, dtype=src_ds.dtype)
        source = h5py.VirtualSource(".", src_ds.name, shape=src_ds.shape)
        if t > 1:
            layout[: t - 1] = source[1:]
        layout[t - 1: t] = source[t - 1: t]
        nxt.create_virtual_dataset(key, layout)


class DemoWriter:
    """Append episodes to a robomimic HDF5 file that appears at ``path`` only when complete.

    Usage::

        with DemoWriter(path, env_args) as writer:
            for episode in episodes:
                writer.append(episode)
        # path now exists; on an exception nothing is left at path or in a partial file
    """

    def __init__(self, path: str | os.PathLike, env_args: dict[str, Any],
                 compression: str | None = "lzf", next_obs: bool = True,
                 valid_ratio: float = 0.1, split_seed: int = 0):
        if "env_name" not in env_args:
            raise ValueError("env_args needs at least 'env_name' (see kitchen_env_args)")
        try:
            self._env_args_json = json.dumps(env_args)
        except TypeError as exc:
            raise ValueError(f"env_args must be JSON serialisable: {exc}") from exc
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.path)
        self.partial_path = partial_path(self.path)
        self.compression = compression
        self.next_obs = next_obs
        split_demos([], valid_ratio, split_seed)  # checks valid_ratio before any work
        self.valid_ratio, self.split_seed = float(valid_ratio), int(split_seed)
        self._file = _h5py().File(self.partial_path, "w")
        self._data = self._file.create_group("data")
        self._count = 0
        self._total = 0
        self._obs_keys: set[str] | None = None

    @property
    def num_demos(self) -> int:
        return self._count

    @property
    def num_samples(self) -> int:
        return self._total

    @property
    def obs_keys(self) -> list[str]:
        return sorted(self._obs_keys or [])

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
            write_next_obs(grp)
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
        write_split_masks(self._file, self.valid_ratio, self.split_seed)
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
                compression: str | None = "lzf", next_obs: bool = True, valid_ratio: float = 0.1,
                split_seed: int = 0) -> Path:
    """Write ``episodes`` to ``path`` atomically (see :class:`DemoWriter`)."""
    with DemoWriter(path, env_args, compression=compression, next_obs=next_obs,
                    valid_ratio=valid_ratio, split_seed=split_seed) as writer:
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
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # e.g. "truncated file: eof = ..., stored_eof = ..."
        raise DemoFileError(f"{path}: cannot open the HDF5 file, it is truncated or corrupt ({exc}); "
                            "copy it again or regenerate it") from exc


def read_dataset(group, key: str, path) -> np.ndarray:
    """``group[key][()]`` with errors that name the file and the key (``data/demo_3/obs/rgb_left``)."""
    name = f"{group.name.lstrip('/')}/{key}"
    try:
        return group[key][()]
    except KeyError as exc:
        raise DemoFileError(f"{path}: no dataset {name!r} (available: {sorted(group.keys())})") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        raise DemoFileError(f"{path}: cannot read {name!r}, the file is truncated or corrupt ({exc})") from exc


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
                obs={k: read_dataset(grp["obs"], k, path) for k in keys},
                actions=read_dataset(grp, "actions", path), rewards=read_dataset(grp, "rewards", path),
                dones=read_dataset(grp, "dones", path), states=read_dataset(grp, "states", path),
                seed=None if seed is None else int(seed), task=task, attrs=attrs,
            )
            if num_samples is not None and int(num_samples) != episode.num_samples:
                raise DemoFileError(f"{path}: data/{name} says num_samples={num_samples} but "
                                    f"holds {episode.num_samples} actions")
            episodes.append(episode)
        return episodes




def add_robomimic_fields(path: str | os.PathLike, valid_ratio: float = 0.1,
                         split_seed: int = 0) -> dict[str, list[str]]:
    """Give an existing demo file ``next_obs`` (where missing) and a new ``mask/train`` /
    ``mask/valid`` split, atomically (the edited copy replaces ``path`` when complete); a kitchen
    file from before the kitchen env type gets it in ``env_args`` (robomimic rollouts).
    Returns the split."""
    import shutil

    path = Path(path)
    with _open_hdf5(path) as f:  # refuses a missing, foreign or truncated file before copying
        if "data" not in f:
            raise DemoFileError(f"{path}: no 'data' group; not a robomimic demo file")
    remove_stale_partials(path)
    tmp = partial_path(path)
    shutil.copyfile(path, tmp)
    try:
        with _h5py().File(tmp, "a") as f:
            for name in _sorted_demo_names(f["data"], path):
                if "next_obs" not in f["data"][name]:
                    write_next_obs(f["data"][name])
            split = write_split_masks(f, valid_ratio, split_seed)
            if "env_args" in f["data"].attrs:
                args = json.loads(_decode_attr(f["data"].attrs["env_args"]))
                if str(args.get("env_name", "")).startswith("kitchen") and args.get("type") != KITCHEN_ENV_TYPE:
                    kwargs = args.setdefault("env_kwargs", {})
                    kwargs.setdefault("cameras", list(args.get("cameras", [])))
                    if args.get("image_size") is not None:
                        kwargs.setdefault("image_size", int(args["image_size"]))
                    args["type"] = KITCHEN_ENV_TYPE
                    f["data"].attrs["env_args"] = json.dumps(args)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return split


_SOURCE_NAMES = ("read_d4rl_kitchen", "read_minari_kitchen", "read_classic_pickle",
                 "read_classic_multiview", "iter_d4rl_kitchen", "iter_minari_kitchen",
                 "iter_any_demos", "replay_states", "render_state", "detect_demo_format",
                 "convert_demos")


def __getattr__(name):  # lazy re-export: robot.demo_sources imports this module
    if name in _SOURCE_NAMES:
        import robot.demo_sources as sources

        return getattr(sources, name)
    raise AttributeError(f"module 'robot.demos' has no attribute {name!r}")
