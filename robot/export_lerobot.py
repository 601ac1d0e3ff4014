"""Write a robomimic-layout demo file as a LeRobotDataset (format v3.0), without importing lerobot::

    python robot/export_lerobot.py demos/microwave_left.hdf5 lerobot/microwave_left
    egohod-export-lerobot demos/microwave_left.hdf5 lerobot/microwave_left --fps 12 --codec libsvtav1

The layout LeRobot's ``LeRobotDataset(repo_id, root=OUT)`` reads (read from lerobot 0.6.1's
``datasets/utils.py``, ``dataset_metadata.py``, ``dataset_writer.py``, ``compute_stats.py``)::

    OUT/meta/info.json                          codebase_version "v3.0", fps, features, totals, paths
    OUT/meta/stats.json                         per feature: min/max/mean/std/count/q01/q10/q50/q90/q99
    OUT/meta/tasks.parquet                      index: task string, column task_index
    OUT/meta/episodes/chunk-000/file-000.parquet  one row per episode: length, tasks, frame range,
                                                data file, per camera video file + from/to timestamp,
                                                stats/<feature>/<stat>
    OUT/data/chunk-000/file-000.parquet         one row per frame: observation.state, action, ...,
                                                timestamp, frame_index, episode_index, index, task_index
    OUT/videos/observation.images.<camera>/chunk-000/file-000.mp4
                                                every episode of that camera, one after the other

Features: ``observation.images.<camera>`` (video) per ``rgb_<camera>``, ``observation.state``
(``proprio``), ``observation.environment_state`` (``object_state``, when present), ``action``,
``next.reward``, ``next.done``. Each episode's task string is the kitchen task's description
(``envs.get_task(task).description``) unless ``--task`` gives one. LeRobot needs an integer
``fps``; the kitchen runs at 12.5 control steps per second, so the default is 12.

The dataset is written to ``OUT.partial-<pid>`` and renamed to ``OUT`` when complete; an
existing ``OUT`` is an error unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from robot.demos import RGB_PREFIX, Episode, read_env_args

CODEBASE_VERSION = "v3.0"
CHUNK_FILE = "chunk-000/file-000"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
DEFAULT_FPS = 12
ROBOT_JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
CODECS = {"libx264": {"codec": "h264", "gop_size": 2, "crf": 18},  # --codec -> egohod.data.video.VideoWriter
          "libsvtav1": {"codec": "av1", "gop_size": 2, "crf": 30}}
IMAGE_KEY = "observation.images."


# ------------------------------------------------------------------------------------ features
def lerobot_features(episode: Episode, fps: int, codec: str) -> dict[str, dict]:
    """``info.json`` features of the dataset a file's episodes become (shapes from ``episode``)."""
    features: dict[str, dict] = {}
    for cam in episode.cameras:
        h, w = episode.obs[f"{RGB_PREFIX}{cam}"].shape[1:3]
        features[f"{IMAGE_KEY}{cam}"] = {
            "dtype": "video", "shape": [int(h), int(w), 3], "names": ["height", "width", "channels"],
            "info": {"video.height": int(h), "video.width": int(w), "video.codec": _codec_name(codec),
                     "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": int(fps),
                     "video.channels": 3, "has_audio": False}}
    n_state = episode.obs["proprio"].shape[1]
    features["observation.state"] = {"dtype": "float32", "shape": [int(n_state)],
                                     "names": ROBOT_JOINTS if n_state == len(ROBOT_JOINTS) else None}
    if "object_state" in episode.obs:
        features["observation.environment_state"] = {
            "dtype": "float32", "shape": [int(episode.obs["object_state"].shape[1])], "names": None}
    n_action = episode.actions.shape[1]
    features["action"] = {"dtype": "float32", "shape": [int(n_action)],
                          "names": ROBOT_JOINTS if n_action == len(ROBOT_JOINTS) else None}
    features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                        ("index", "int64"), ("task_index", "int64")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    return features


def _codec_name(codec: str) -> str:
    return {"libx264": "h264", "libsvtav1": "av1"}[codec]


def episode_columns(episode: Episode, episode_index: int, first_index: int, task_index: int,
                    fps: int) -> dict[str, np.ndarray]:
    """The data-parquet columns of one episode (everything but the videos)."""
    t = episode.num_samples
    cols = {"observation.state": episode.obs["proprio"].astype(np.float32)}
    if "object_state" in episode.obs:
        cols["observation.environment_state"] = episode.obs["object_state"].astype(np.float32)
    cols["action"] = episode.actions.astype(np.float32)
    cols["next.reward"] = episode.rewards.astype(np.float32)
    cols["next.done"] = episode.dones.astype(bool)
    frame_index = np.arange(t, dtype=np.int64)
    cols["timestamp"] = (frame_index / fps).astype(np.float32)
    cols["frame_index"] = frame_index
    cols["episode_index"] = np.full(t, episode_index, dtype=np.int64)
    cols["index"] = np.arange(first_index, first_index + t, dtype=np.int64)
    cols["task_index"] = np.full(t, task_index, dtype=np.int64)
    return cols


# ------------------------------------------------------------------------------------ stats
def feature_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics over the first axis (frames)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
             "count": np.array([len(values)])}
    for q in QUANTILES:
        stats[f"q{int(q * 100):02d}"] = np.quantile(values, q, axis=0)
    return stats


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of uint8 ``[T, H, W, 3]`` frames in [0, 1], shaped ``(3, 1, 1)`` as LeRobot's."""
    stats = feature_stats(frames.reshape(-1, 3).astype(np.float64) / 255.0)
    stats = {k: v.reshape(3, 1, 1) for k, v in stats.items() if k != "count"}
    stats["count"] = np.array([len(frames)])  # frames, as LeRobot counts images
    return stats


def merge_stats(parts: list[dict[str, np.ndarray]], counts: list[int]) -> dict[str, np.ndarray]:
    """Dataset statistics from per-episode ones: exact min/max/mean/std (pooled), count-weighted
    mean of the quantiles (LeRobot's aggregation does the same)."""
    w = np.asarray(counts, dtype=np.float64)
    w = w / w.sum()
    mean = sum(wi * p["mean"] for wi, p in zip(w, parts))
    second = sum(wi * (p["std"] ** 2 + p["mean"] ** 2) for wi, p in zip(w, parts))
    out = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
           "mean": mean, "std": np.sqrt(np.maximum(second - mean ** 2, 0.0)),
           "count": np.array([int(sum(p["count"][0] for p in parts))])}
    for key in parts[0]:
        if key.startswith("q"):
            out[key] = sum(wi * p[key] for wi, p in zip(w, parts))
    return out


def _jsonable(stats: dict) -> dict:
    return {k: (_jsonable(v) if isinstance(v, dict) else np.asarray(v).tolist()) for k, v in stats.items()}


# ------------------------------------------------------------------------------------ video
def _video_writer(path: Path, fps: int, height: int, width: int, codec: str):
    """All episodes of one camera go into one mp4 (frame ``i`` at ``i / fps`` seconds) through
    egohod's :class:`egohod.data.video.VideoWriter` (keyframe every 2 frames, as LeRobot encodes)."""
    from egohod.data.video import VideoWriter

    if height % 2 or width % 2:
        raise ValueError(f"{path.name}: yuv420p video needs even frame sizes, got {height}x{width}")
    return VideoWriter(path, fps, height, width, **CODECS[codec])


# ------------------------------------------------------------------------------------ writing
def _iter_episodes(path: Path) -> Iterator[Episode]:
    """One episode at a time (the frames of a whole file need not fit in memory)."""
    from robot.demos import _open_hdf5, _sorted_demo_names

    with _open_hdf5(path) as f:
        names = _sorted_demo_names(f["data"], path)
    for name in names:
        yield _read_one(path, name)


def _read_one(path: Path, name: str) -> Episode:
    import h5py

    from robot.demos import _decode_attr, read_dataset

    with h5py.File(path, "r") as f:
        grp = f["data"][name]
        attrs = {k: _decode_attr(v) for k, v in grp.attrs.items()}
        return Episode(obs={k: read_dataset(grp["obs"], k, path) for k in grp["obs"]},
                       actions=read_dataset(grp, "actions", path), rewards=read_dataset(grp, "rewards", path),
                       dones=read_dataset(grp, "dones", path), states=read_dataset(grp, "states", path),
                       task=attrs.get("task"))


def task_text(task: str | None) -> str:
    """The natural-language task of a kitchen task name (its registered description)."""
    if not task:
        return "kitchen task"
    try:
        import envs

        return envs.get_task(task).description
    except (KeyError, ValueError):
        return task.replace("_", " ")


def _write_parquet(table_columns: dict[str, np.ndarray], path: Path, lengths: dict[str, int]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays, names = [], []
    for name, values in table_columns.items():
        if values.ndim == 2:  # fixed-length vectors: LeRobot's Sequence(length=n)
            flat = pa.array(values.reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(
                flat, type=pa.list_(pa.field("item", flat.type), lengths[name])))
        else:
            arrays.append(pa.array(values))
        names.append(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)


def export_lerobot(src: str | os.PathLike, out: str | os.PathLike, fps: int = DEFAULT_FPS,
                   task: str | None = None, codec: str = "libx264", robot_type: str = "franka_panda",
                   overwrite: bool = False, progress: bool = True) -> dict:
    """Write the demo file ``src`` as a LeRobotDataset v3.0 at ``out``; returns a summary."""
    import pandas as pd

    from egohod.fileio import atomic_write_json

    src, out = Path(src), Path(out)
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}; got {codec!r}")
    if fps < 1:
        raise ValueError(f"fps must be a positive integer (LeRobot stores an int); got {fps}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another output folder or pass overwrite")
    env_args = read_env_args(src)
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tasks: dict[str, int] = {}
    columns: dict[str, list] = {}
    episodes_rows: list[dict] = []
    per_feature: dict[str, list] = {}
    counts: list[int] = []
    videos: dict = {}  # camera key -> its egohod.data.video.VideoWriter
    features = None
    total = 0
    episodes = _iter_episodes(src)
    if progress:
        from tqdm import tqdm

        episodes = tqdm(episodes, desc=f"lerobot {src.name}", unit="episode", file=sys.stderr)
    try:
        with contextlib.ExitStack() as closing:  # at its end each writer finishes its file (drops it on an error)
            for ep_idx, episode in enumerate(episodes):
                if features is None:
                    features = lerobot_features(episode, fps, codec)
                text = task or task_text(episode.task or env_args.get("task"))
                task_index = tasks.setdefault(text, len(tasks))
                cols = episode_columns(episode, ep_idx, total, task_index, fps)
                row = {"episode_index": ep_idx, "tasks": [text], "length": episode.num_samples,
                       "data/chunk_index": 0, "data/file_index": 0,
                       "dataset_from_index": total, "dataset_to_index": total + episode.num_samples}
                stats = {k: feature_stats(v) for k, v in cols.items()}
                for cam in episode.cameras:
                    key, frames = f"{IMAGE_KEY}{cam}", episode.obs[f"{RGB_PREFIX}{cam}"]
                    if key not in features:
                        raise ValueError(f"{src}: episode {ep_idx} has camera {cam!r} that the first episode lacks")
                    if key not in videos:
                        videos[key] = closing.enter_context(_video_writer(
                            tmp / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0),
                            fps, frames.shape[1], frames.shape[2], codec))
                    start = videos[key].count / fps
                    videos[key].write(frames)
                    row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                                f"videos/{key}/from_timestamp": start,
                                f"videos/{key}/to_timestamp": start + episode.num_samples / fps})
                    stats[key] = image_stats(frames)
                row.update({f"stats/{k}/{s}": np.asarray(v).tolist() for k, st in stats.items() for s, v in st.items()})
                row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
                episodes_rows.append(row)
                for k, v in cols.items():
                    columns.setdefault(k, []).append(v)
                for k, st in stats.items():
                    per_feature.setdefault(k, []).append(st)
                counts.append(episode.num_samples)
                total += episode.num_samples
        if features is None:
            raise ValueError(f"{src}: no episodes to export")
        data = {k: np.concatenate(v) for k, v in columns.items()}
        lengths = {k: int(v.shape[1]) for k, v in data.items() if v.ndim == 2}
        _write_parquet(data, tmp / DATA_PATH.format(chunk_index=0, file_index=0), lengths)
        (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(episodes_rows).to_parquet(tmp / "meta" / "episodes" / f"{CHUNK_FILE}.parquet")
        pd.DataFrame({"task_index": list(tasks.values())},
                     index=pd.Index(list(tasks), name="task")).to_parquet(tmp / "meta" / "tasks.parquet")
        atomic_write_json(tmp / "meta" / "stats.json",
                          _jsonable({k: merge_stats(v, counts) for k, v in per_feature.items()}))
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episodes_rows),
                "total_frames": total, "total_tasks": len(tasks), "chunks_size": 1000,
                "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": int(fps),
                "splits": {"train": f"0:{len(episodes_rows)}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if videos else None, "features": features}
        atomic_write_json(tmp / "meta" / "info.json", info)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "episodes": len(episodes_rows), "frames": total, "fps": fps,
            "cameras": sorted(k[len(IMAGE_KEY):] for k in videos), "tasks": sorted(tasks), "codec": codec}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="egohod-export-lerobot", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("src", help="robomimic-layout demo file (robot/make_demos.py, robot.demo_sources convert)")
    parser.add_argument("out", help="output folder (the dataset root)")
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS)
    parser.add_argument("--task", default=None, help="task string for every episode (default: the kitchen task's)")
    parser.add_argument("--codec", default="libx264", choices=sorted(CODECS))
    parser.add_argument("--robot-type", default="franka_panda")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)
    try:
        summary = export_lerobot(args.src, args.out, args.fps, args.task, args.codec, args.robot_type, args.overwrite)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"egohod-export-lerobot: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
