"""The egocentric kitchen corpus job behind ``robot/make_corpus.py``: expert episodes (the episode
loop of :mod:`robot.demo_gen`) written as chunked videos, Ego4D-style clip narrations and
simulator-projected hand-object detections. The pieces it writes with (seeds, projector, clip
narrations, video and detection writers) are in :mod:`robot.corpus`; the layout of ``out/`` is
documented in ``robot/make_corpus.py``.

    from robot.corpus_gen import MakeCorpusConfig, make_corpus
    manifest = make_corpus(MakeCorpusConfig(out="corpus_small", episodes=2, tasks=["microwave"]))
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import MISSING

from robot.corpus import CORPUS_FIRST_SEED

DEFAULT_CAMERAS = ("default", "left", "right", "ego")
DATASET = "kitchen_sim"


@dataclass
class MakeCorpusConfig:
    out: str = MISSING                  # corpus folder
    episodes: int = 32                  # successful episodes per task
    tasks: list = field(default_factory=lambda: ["all"])          # task names, or [all]
    cameras: list = field(default_factory=lambda: list(DEFAULT_CAMERAS))  # free cameras (envs/cameras.py)
    image_size: int = 112               # side of the square frames (even: yuv420p video)
    first_seed: int = CORPUS_FIRST_SEED # task k tries first_seed + k * 10_000 + i
    horizon: int = 50                   # control steps per episode (12.5 per second)
    action_noise: float = 0.1           # DART noise std on the executed actions (as make_demos)
    max_attempts: Optional[int] = None  # per task; null = 4 * episodes + 20
    chunk_seconds: float = 15.0         # video chunk length (the loader's default)
    workers: int = 1                    # processes rendering episodes (one env each)
    overwrite: bool = False             # delete an existing corpus written with other settings
    progress: bool = True


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="robot", name="make_corpus_schema", node=MakeCorpusConfig)


# ------------------------------------------------------------------------------ request
def resolve_tasks(tasks) -> list[str]:
    from envs.experts import list_experts

    experts = list_experts()
    tasks = list(tasks)
    if tasks == ["all"] or tasks == []:
        return experts
    for t in tasks:
        if t not in experts:
            raise ValueError(f"tasks: unknown task {t!r}; tasks with a scripted expert: {', '.join(experts)} (or [all])")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks lists a task twice: {tasks}")
    return tasks


def check_cameras(cameras) -> list[str]:
    from envs.cameras import get_camera

    cameras = list(cameras)
    if not cameras:
        raise ValueError("cameras is empty; give at least one free camera, e.g. cameras=[ego]")
    for c in cameras:
        try:
            spec = get_camera(c)
        except KeyError as exc:
            raise ValueError(f"cameras: {exc.args[0]}") from None
        if not spec.is_free:
            raise ValueError(f"cameras: {c!r} is a model camera; detections are projected for free cameras only "
                             "(default, left, right, ego)")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras lists a camera twice: {cameras}")
    return cameras


def request_of(cfg, tasks: list[str], cameras: list[str]) -> dict:
    """What the corpus depends on (a rerun with a different request is refused)."""
    from robot.demo_gen import definition_fingerprint

    return {"tasks": tasks, "cameras": cameras, "image_size": int(cfg.image_size),
            "first_seed": int(cfg.first_seed), "horizon": int(cfg.horizon),
            "action_noise": float(cfg.action_noise), "chunk_seconds": float(cfg.chunk_seconds),
            "fingerprints": {t: definition_fingerprint(t) for t in tasks}}


def check_config(cfg) -> tuple[list[str], list[str], int]:
    from robot.corpus import check_corpus_seeds

    tasks, cameras = resolve_tasks(cfg.tasks), check_cameras(cfg.cameras)
    if cfg.episodes < 1:
        raise ValueError(f"episodes must be >= 1 (successful episodes per task), got {cfg.episodes}")
    if cfg.image_size < 16 or cfg.image_size % 2:
        raise ValueError(f"image_size must be an even number >= 16 (yuv420p video), got {cfg.image_size}")
    if cfg.horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {cfg.horizon}")
    if not 0.0 <= cfg.action_noise <= 1.0:
        raise ValueError(f"action_noise must be in [0, 1], got {cfg.action_noise}")
    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1, got {cfg.workers}")
    if cfg.chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be > 0, got {cfg.chunk_seconds}")
    limit = int(cfg.max_attempts) if cfg.max_attempts is not None else 4 * int(cfg.episodes) + 20
    if limit < cfg.episodes:
        raise ValueError(f"max_attempts={limit} is below episodes={cfg.episodes}")
    check_corpus_seeds(tasks, limit, cfg.first_seed)
    return tasks, cameras, limit


def _prepare_out(out: Path, request: dict, overwrite: bool) -> list[dict]:
    """Check (or write) ``request.json``; return the episode records of an interrupted run."""
    from egohod.fileio import atomic_write_json

    req_path, log = out / "request.json", out / "episodes.jsonl"
    if req_path.exists():
        have = json.loads(req_path.read_text())
        if have != request and not overwrite:
            diff = ", ".join(f"{k}: corpus has {have.get(k)!r}, requested {v!r}"
                             for k, v in request.items() if have.get(k) != v)
            raise ValueError(f"{out} holds a corpus written with other settings ({diff}); "
                             "choose another out or set overwrite=true")
        if have != request or overwrite:
            for name in ("videos", "detections"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in ("episodes.jsonl", "clips.csv", "manifest.json"):
                (out / name).unlink(missing_ok=True)
    atomic_write_json(req_path, request)
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------ one episode
def write_episode(out: Path, env, episode, cameras: list[str], image_size: int, fps: float,
                  chunk_seconds: float) -> dict:
    """Videos, detections and clips of one successful episode; returns its record."""
    from robot.corpus import episode_clips, replay_annotations, video_id, write_detections, write_video
    from robot.demos import RGB_PREFIX

    u = env.unwrapped
    signals = replay_annotations(env, episode, cameras, image_size, u.render_size)
    clips = episode_clips(episode.task, signals, fps)
    if not clips:
        raise RuntimeError(f"{episode.task} seed {episode.seed}: a successful episode without contact or motion "
                           "of the task's part; the projector's object geoms do not match the task")
    videos = []
    for cam in cameras:
        vid = video_id(episode.task, episode.seed, cam)
        write_video(out / "videos", vid, episode.obs[f"{RGB_PREFIX}{cam}"], fps, chunk_seconds)
        write_detections(out / "detections" / f"{vid}.npz", [a[cam] for a in signals.annotations],
                         image_size, image_size, fps)
        videos.append(vid)
    return {"task": episode.task, "seed": int(episode.seed), "success": True, "frames": len(episode.actions),
            "videos": videos, "contact_frames": int(signals.contact.sum()),
            "clips": [{"phase": c.phase, "start": c.start, "end": c.end, "text": c.text} for c in clips]}


# ------------------------------------------------------------------------------ the job
@dataclass
class TaskStats:
    task: str
    kept: int = 0
    attempts: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads; workers=1 renders in it)
    frames: int = 0      # frames rendered (all cameras) in this run

    @property
    def success_rate(self) -> float:
        return self.kept / self.attempts if self.attempts else float("nan")


def _make_task_env(task: str, image_size: int, horizon: int):
    from robot.demo_gen import make_episode_env

    return make_episode_env(task, image_size, horizon)  # the env the episode loop renders with


def make_corpus(cfg) -> dict:
    """Write (or finish) the corpus of a :class:`MakeCorpusConfig`; return its manifest."""
    from egohod.fileio import FolderLock, append_jsonl, atomic_write_json
    from robot.corpus import corpus_seeds, task_seed_base
    from robot.demo_gen import iter_attempts

    tasks, cameras, limit = check_config(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, what="make_corpus"):
        records = _prepare_out(out, request_of(cfg, tasks, cameras), bool(cfg.overwrite))
        stats = {t: TaskStats(t) for t in tasks}
        for r in records:
            if r["task"] in stats:
                stats[r["task"]].attempts += 1
                stats[r["task"]].kept += int(r["success"])
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(tasks) * cfg.episodes, initial=sum(min(s.kept, cfg.episodes) for s in stats.values()),
                       desc="corpus", unit="episode", file=sys.stderr)
        sim = _sim_facts(tasks[0], cfg.image_size, cfg.horizon)
        fps = sim["fps"]
        try:
            for task in tasks:
                st = stats[task]
                if st.kept >= cfg.episodes:
                    continue
                env = _make_task_env(task, cfg.image_size, cfg.horizon)
                t0, c0 = time.time(), time.process_time()
                attempts = iter_attempts(task, cameras, cfg.image_size, task_seed_base(task, cfg.first_seed) + st.attempts,
                                         cfg.workers, cfg.horizon, cfg.action_noise)
                try:
                    for seed, episode in attempts:
                        st.attempts += 1
                        if episode is None:
                            rec = {"task": task, "seed": int(seed), "success": False}
                        else:
                            rec = write_episode(out, env, episode, cameras, cfg.image_size, fps, cfg.chunk_seconds)
                            st.kept += 1
                            st.frames += rec["frames"] * len(cameras)
                            if bar is not None:
                                bar.update(1)
                        append_jsonl(out / "episodes.jsonl", rec)
                        records.append(rec)
                        if bar is not None:
                            bar.set_postfix(task=task, success=f"{st.success_rate:.0%}")
                        if st.kept >= cfg.episodes:
                            break
                        if st.attempts >= limit:
                            seeds = corpus_seeds(task, limit, cfg.first_seed)
                            raise RuntimeError(
                                f"only {st.kept}/{cfg.episodes} successful {task} episodes in {st.attempts} attempts "
                                f"(seeds {seeds.start}..{seeds.stop - 1}); raise max_attempts or check the expert "
                                f"with `python -m envs.experts.evaluate --tasks {task}`")
                finally:
                    attempts.close()
                    env.close()
                    st.seconds += time.time() - t0
                    st.cpu_seconds += time.process_time() - c0
        finally:
            if bar is not None:
                bar.close()
        manifest = _finish(out, cfg, tasks, cameras, records, stats, sim)
        atomic_write_json(out / "manifest.json", manifest)
        return manifest


def _sim_facts(task: str, image_size: int, horizon: int) -> dict:
    """Frame rate (the control rate), render size and randomisation of the episode envs."""
    env = _make_task_env(task, image_size, horizon)
    try:
        u = env.unwrapped
        return {"fps": 1.0 / u.dt, "render_size": int(u.render_size),
                "randomisation": {"kitchen_noise": u.sim.kitchen_noise, "joint_noise": u.sim.joint_noise}}
    finally:
        env.close()


def _finish(out: Path, cfg, tasks, cameras, records, stats, sim: dict) -> dict:
    """Write ``clips.csv`` from the kept episodes and build the manifest."""
    from egohod.data.metadata import ClipRecord, write_hod_csv
    from envs.cameras import get_camera
    from robot.corpus import corpus_seeds

    kept = [r for r in records if r["success"] and r["task"] in stats]
    kept.sort(key=lambda r: (tasks.index(r["task"]), r["seed"]))
    per_task: dict[str, list] = {t: [] for t in tasks}
    for r in kept:
        if len(per_task[r["task"]]) < cfg.episodes:
            per_task[r["task"]].append(r)
    rows = []
    for t in tasks:
        for r in per_task[t]:
            for vid in r["videos"]:
                rows += [ClipRecord(vid, c["start"], c["end"], (c["text"],), DATASET, f"{vid}_{c['phase']}")
                         for c in r["clips"]]
    write_hod_csv(out / "clips.csv", rows)
    tried = {t: [r["seed"] for r in records if r["task"] == t] for t in tasks}
    fps = sim["fps"]
    run_frames = sum(s.frames for s in stats.values())
    run_seconds = sum(s.seconds for s in stats.values())
    run_cpu = sum(s.cpu_seconds for s in stats.values())
    return {
        "kind": "egohod kitchen corpus",
        "command": _command_line(),
        "tasks": tasks,
        "cameras": {c: {k: list(v) if isinstance(v, tuple) else v for k, v in vars(get_camera(c)).items()
                       if v is not None} for c in cameras},
        "fps": fps,
        "frame_step_seconds": 1.0 / fps,
        "image_size": int(cfg.image_size),
        "render_size": sim["render_size"],
        "horizon": int(cfg.horizon),
        "chunk_seconds": float(cfg.chunk_seconds),
        "episodes_per_task": int(cfg.episodes),
        "episodes": sum(len(v) for v in per_task.values()),
        "videos": sum(len(r["videos"]) for v in per_task.values() for r in v),
        "clips": len(rows),
        "action_noise": float(cfg.action_noise),
        "randomisation": sim["randomisation"],
        "seeds": {t: {"first": corpus_seeds(t, 1, cfg.first_seed).start, "tried": len(tried[t]),
                      "kept": [r["seed"] for r in per_task[t]],
                      "failed": [r["seed"] for r in records if r["task"] == t and not r["success"]]}
                  for t in tasks},
        "expert_success": {t: (sum(r["success"] for r in records if r["task"] == t) / len(tried[t]))
                           if tried[t] else None for t in tasks},
        "cost_this_run": {"seconds": round(run_seconds, 1), "cpu_seconds": round(run_cpu, 1),
                          "frames_rendered": run_frames,
                          "frames_per_second": round(run_frames / run_seconds, 2) if run_seconds else None,
                          "frames_per_cpu_second": round(run_frames / run_cpu, 2) if run_cpu else None,
                          "per_task_seconds": {t: round(s.seconds, 1) for t, s in stats.items()},
                          "workers": int(cfg.workers)},
        "layout": {"videos": "videos/{video_id}/{chunk:04d}.mp4", "detections": "detections/{video_id}.npz",
                   "clips": "clips.csv", "video_id": "{task}_s{seed}_{camera}"},
        "hod_command": (f"egohod hod run clips={out / 'clips.csv'} videos={out / 'videos'} out=<hod_out> "
                        f"detector=precomputed detector.format=100doh detector.root={out / 'detections'}"),
    }


def _command_line() -> str | None:
    """The command that wrote the corpus, when it was ``robot/make_corpus.py`` or ``egohod-make-corpus``."""
    prog = Path(sys.argv[0]).name
    if prog == "make_corpus.py":
        return " ".join(["python", "robot/make_corpus.py", *sys.argv[1:]])
    if prog == "egohod-make-corpus":
        return " ".join([prog, *sys.argv[1:]])
    return None


def summary_table(manifest: dict) -> str:
    rows = ["| task | episodes | seeds tried | expert success (%) | time this run (s) |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for t in manifest["tasks"]:
        s = manifest["seeds"][t]
        rate = manifest["expert_success"][t]
        rows.append(f"| {t} | {len(s['kept'])} | {s['tried']} | {'-' if rate is None else f'{100 * rate:.1f}'} "
                    f"| {manifest['cost_this_run']['per_task_seconds'][t]:.1f} |")
    c = manifest["cost_this_run"]
    rows.append(f"\n{manifest['episodes']} episodes, {manifest['videos']} videos, {manifest['clips']} clips at "
                f"{manifest['fps']:g} fps, {manifest['image_size']} px; this run rendered {c['frames_rendered']} frames "
                f"in {c['seconds']:.0f} s ({c['frames_per_second']} frames/s; {c['cpu_seconds']:.0f} CPU s, "
                f"{c['frames_per_cpu_second']} frames per CPU second)")
    return "\n".join(rows)
