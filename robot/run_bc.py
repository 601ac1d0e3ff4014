"""One behaviour-cloning run on frozen features: demos -> cached features -> policy ->
periodic success-rate evaluations -> results, checkpoints, plot, videos.

``robot/train_bc.py`` (Hydra) composes the config and calls :func:`train_bc`; tests and
benchmarks call the same functions. Everything that can be wrong with the inputs (demo file,
its recorded task, cameras and image size, encoder checkpoint, policy options, the state of
``out``) is checked before anything is written to ``out``.

A run owns its folder: :func:`train_bc` holds an exclusive :class:`egohod.fileio.FolderLock` on
``out`` (a second run there fails at once naming the holder's PID and host); a folder holding
a previous run is resumed (``resume=true``, the default) or, with ``resume=false``, refused unless
``overwrite=true`` (which replaces that run's checkpoints, results, plot, videos and evaluations).
A run that fails before its first write leaves ``out`` as it found it (an empty folder it
created is removed).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from egohod.device import resolve_device
from egohod.fileio import FolderLock
from egohod.models import is_random_weights, random_weights_seed

from .bc_data import BCData
from .config import ConfigError, EnvConfig, EvalConfig, validate
from .evaluation import EvalEnvs, Threads, evaluate, run_episodes, write_video
from .features import FeatureCache, cached_features, memoized_sha256
from .obs_encoders import ObsEncoder, StateObsEncoder, build_obs_encoder, cache_identity, obs_encoder_class
from .results import RunResults, plot_success_curve, summary_table
from .training import (build_policy_from_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                       train_step)


def console():
    from rich.console import Console

    return Console(highlight=False)


def env_id(env_cfg) -> str:
    return f"{env_cfg.name}/{env_cfg.task}"


def env_kwargs(env_cfg) -> dict:
    return {"kitchen_noise": float(env_cfg.kitchen_noise), "joint_noise": float(env_cfg.joint_noise),
            "strict_success": getattr(env_cfg, "success", "task") == "strict"}


def check_env(env_cfg) -> None:
    import envs

    known = envs.list_envs(f"{env_cfg.name}/*")
    if env_id(env_cfg) not in known:
        raise ConfigError(f"env.task={env_cfg.task!r}: no environment {env_id(env_cfg)!r}; "
                          f"known: {', '.join(k.split('/', 1)[1] for k in known)}")
    cams = envs.list_cameras(r3m=True)
    if env_cfg.camera not in cams:
        raise ConfigError(f"env.camera={env_cfg.camera!r} is not a camera; choose one of {', '.join(cams)}")


def check_protocol(cfg) -> None:
    """``protocol=r3m`` runs R3M's cameras only: a view named as in this package's protocol is an
    error naming R3M's camera for it (R3M's code refuses a default kitchen camera)."""
    from envs.cameras import R3M_CAMERA_FOR_VIEW, R3M_MODEL_CAMERAS

    if cfg.get("protocol", "egohod") == "r3m" and cfg.env.camera not in R3M_MODEL_CAMERAS:
        hint = R3M_CAMERA_FOR_VIEW.get(cfg.env.camera)
        raise ConfigError(f"protocol=r3m: env.camera={cfg.env.camera!r} is not one of R3M's cameras "
                          f"({', '.join(R3M_MODEL_CAMERAS)}); "
                          + (f"set env.camera={hint}" if hint else "R3M's kitchen runs have no default camera")
                          + " (or drop protocol=r3m)")


# --- demos ----------------------------------------------------------------------------------

def demo_obs_keys(path: str | Path) -> tuple[int, set[str], dict[str, tuple]]:
    """(number of demos, observation keys, shape per key of the first demo) of a demo file in
    the robomimic HDF5 layout (``data/demo_N/obs/<key>``)."""
    from robot.demos import DemoFileError, _open_hdf5, _sorted_demo_names

    with _open_hdf5(path) as f:
        if "data" not in f:
            raise DemoFileError(f"demo file {path} has no 'data' group (expected the robomimic HDF5 layout)")
        names = _sorted_demo_names(f["data"], path)
        if "obs" not in f["data"][names[0]]:
            raise DemoFileError(f"{path}: data/{names[0]} has no 'obs' group")
        obs = f["data"][names[0]]["obs"]
        return len(names), set(obs.keys()), {k: tuple(obs[k].shape) for k in obs.keys()}


def demo_record(path: str | Path) -> dict:
    """What a demo file says it was recorded for: ``{"task", "env_name", "cameras", "image_size",
    "episode_task"}`` (``env_args`` of the file, and the ``task`` attribute of its first demo)."""
    from robot.demos import DemoFileError, _decode_attr, _open_hdf5, _sorted_demo_names, read_env_args

    try:
        args = read_env_args(path)
    except DemoFileError as exc:
        raise DemoFileError(f"{exc}: the file does not record the task, cameras and image size it was made "
                            "for (robot/make_demos.py and robot/demo_sources.py convert write them)") from exc
    with _open_hdf5(path) as f:
        first = f["data"][_sorted_demo_names(f["data"], path)[0]]
        episode_task = _decode_attr(first.attrs["task"]) if "task" in first.attrs else None
    env_name = args.get("env_name")
    task = args.get("task") or (env_name.split("/", 1)[-1] if isinstance(env_name, str) else None)
    return {"task": task, "env_name": env_name, "cameras": args.get("cameras"),
            "image_size": args.get("image_size"), "episode_task": episode_task}


def generated_demos_path(cfg, cameras: list[str], num: int | None = None) -> Path:
    from robot.demo_gen import demo_file_name

    num = cfg.demos.num if num is None else num
    return Path(cfg.demos.cache_dir) / demo_file_name(cfg.env.task, cameras, num, cfg.env.image_size,
                                                      cfg.demos.seed, cfg.demos.action_noise, cfg.env.name)


def generate_cell_demos(cfg, cameras: list[str], num: int | None = None, log=print, return_stats: bool = False):
    """Generate (or reuse) the demo cache's file of ``cfg``'s task with ``cameras`` and ``num`` demos
    (default ``demos.num``); ``robot/sweep.py`` asks for every camera and the largest count at once."""
    from robot.demo_gen import generate_demos

    num = cfg.demos.num if num is None else num
    out = generated_demos_path(cfg, cameras, num)
    log(f"demos: {num} {cfg.env.task} demos ({'cameras ' + ','.join(cameras) if cameras else 'no camera'}, "
        f"{cfg.env.image_size}px, seed {cfg.demos.seed}, action noise {cfg.demos.action_noise:g}) -> {out}")
    return generate_demos(task=cfg.env.task, cameras=cameras, num_demos=num, image_size=cfg.env.image_size,
                          seed=cfg.demos.seed, workers=cfg.demos.workers, out=str(out), horizon=cfg.env.horizon,
                          action_noise=cfg.demos.action_noise, regenerate_stale=True, env_family=cfg.env.name,
                          return_stats=return_stats)


def ensure_demos(cfg, encoder: ObsEncoder, log=print) -> Path:
    """The demo file: ``demos.path`` when given (must exist), else generated by the scripted
    experts into the demo cache (reused when it is already there)."""
    if cfg.demos.path:
        p = Path(cfg.demos.path)
        if not p.is_file():
            raise FileNotFoundError(f"demos.path={cfg.demos.path!r}: demo file not found "
                                    "(remove demos.path to generate demos with the scripted experts)")
        return p
    return Path(generate_cell_demos(cfg, [cfg.env.camera] if encoder.needs_rgb else [], log=log))


def demos_option(cfg, path: Path) -> str:
    """How the run's config names this demo file (for error messages)."""
    return f"demos.path={cfg.demos.path}" if cfg.demos.path else f"generated demo file {path} (demos.cache_dir)"


def check_demos(path: Path, cfg, encoder: ObsEncoder) -> str:
    """Validate the demo file for this run; return the observation key the encoder reads.

    The file's recorded task must be the run's ``env.task`` (training on one task's demos and
    evaluating on another's env gives meaningless success rates), and for vision encoders its
    recorded cameras must include ``env.camera`` and its image size equal ``env.image_size``.
    An unreadable (truncated, corrupt) file is an error naming the file and the key."""
    from robot.demos import DemoFileError

    try:
        return _check_demos(path, cfg, encoder)
    except DemoFileError as exc:
        raise DemoFileError(f"{demos_option(cfg, path)}: {exc}") from exc


def _check_demos(path: Path, cfg, encoder: ObsEncoder) -> str:
    n, keys, shapes = demo_obs_keys(path)
    rec = demo_record(path)
    for what, recorded in (("task", rec["task"]), ("task attribute of the first demo", rec["episode_task"])):
        if recorded is not None and recorded != cfg.env.task:
            raise ConfigError(f"demo file {path} was recorded for task {recorded!r} ({what}) but env.task="
                              f"{cfg.env.task!r}: set env.task={recorded} or use demos of {cfg.env.task!r}")
    if rec["task"] is None:
        raise ConfigError(f"demo file {path} records no task (env_args has neither 'task' nor 'env_name'); "
                          "convert it with robot/demo_sources.py, which records it")
    if rec["env_name"] is not None and rec["env_name"] != env_id(cfg.env):
        raise ConfigError(f"demo file {path} was recorded in environment {rec['env_name']!r} but this run "
                          f"evaluates {env_id(cfg.env)!r} (env.name/env.task)")
    key = encoder.obs_key(cfg.env.camera)
    if encoder.needs_rgb and rec["cameras"] is not None and cfg.env.camera not in rec["cameras"]:
        raise ConfigError(f"camera {cfg.env.camera!r} is not in demo file {path} (cameras in the file: "
                          f"{', '.join(rec['cameras']) or 'none'}, as recorded in its env_args). Set env.camera to one of them or use a demo "
                          "file rendered from that camera")
    if encoder.needs_rgb and rec["image_size"] is not None and int(rec["image_size"]) != cfg.env.image_size:
        raise ConfigError(f"demo file {path} was recorded at image size {rec['image_size']} but env.image_size="
                          f"{cfg.env.image_size}: training and evaluation images would differ; set "
                          f"env.image_size={rec['image_size']}")
    if key not in keys:
        cams = sorted(k[len("rgb_"):] for k in keys if k.startswith("rgb_"))
        if encoder.needs_rgb:
            raise ConfigError(f"camera {cfg.env.camera!r} is not in demo file {path} (observation '{key}' missing); "
                              f"cameras in the file: {', '.join(cams) or 'none'}. Set env.camera to one of them or "
                              "use a demo file rendered from that camera")
        raise ConfigError(f"demo file {path} has no '{key}' observation (needed by encoder {encoder.info.name!r}); "
                          f"it has: {', '.join(sorted(keys))}")
    if "proprio" not in keys:
        raise ConfigError(f"demo file {path} has no 'proprio' observation; it has: {', '.join(sorted(keys))}")
    if n < cfg.demos.num:
        raise ConfigError(f"demos.num={cfg.demos.num} but demo file {path} holds only {n} demos")
    if encoder.needs_rgb:
        h, w = shapes[key][1:3]
        if (h, w) != (cfg.env.image_size, cfg.env.image_size):
            raise ConfigError(f"demo frames in {path} are {h}x{w} but env.image_size={cfg.env.image_size}: "
                              "training and evaluation images would differ; set env.image_size to match")
    return key


def read_episodes(path: Path, num: int, obs_keys: list[str], cfg=None):
    from robot.demos import DemoFileError, read_demos

    try:
        return read_demos(str(path), obs_keys=obs_keys, max_demos=num)
    except DemoFileError as exc:
        if cfg is None:
            raise
        raise DemoFileError(f"{demos_option(cfg, path)}: {exc}") from exc


# --- preparation ----------------------------------------------------------------------------

@dataclass
class Prepared:
    encoder: ObsEncoder
    demos_path: Path
    demos_sha256: str
    data: BCData
    obs_key: str
    feature_cache_hit: bool
    feature_seconds: float


def encoder_seed(cfg) -> int:
    """Seed of the encoder's random weights: ``encoder.seed``, else the run's ``seed``."""
    return int(cfg.seed if cfg.encoder.get("seed") is None else cfg.encoder.seed)


def state_index(cfg) -> list[int] | None:
    """The ``object_state`` entries the ``state`` encoder keeps (``encoder.object_state``)."""
    if obs_encoder_class(cfg.encoder.name).needs_rgb or cfg.encoder.object_state == "all":
        return None
    from envs.kitchen_env import task_state_index

    return list(task_state_index(env_id(cfg.env)))


def prepare(cfg, device: torch.device, log=print) -> Prepared:
    """Everything before the first update, in the order that fails fastest."""
    from policies import policy_options

    validate(cfg)
    policy_cfg = dict(cfg.policy)
    name = policy_cfg.pop("name")
    policy_options(name, policy_cfg)  # unknown policy / option -> error now
    check_env(cfg.env)
    check_protocol(cfg)
    encoder = build_obs_encoder(cfg.encoder.name, cfg.encoder.checkpoint, cfg.encoder.num_frames, str(device),
                                state_index=state_index(cfg), seed=encoder_seed(cfg))
    if encoder.info.random_weights:
        log(f"[bold red]encoder {encoder.info.name}: RANDOM WEIGHTS[/] (seed {encoder.info.seed}; no "
            "encoder.checkpoint given)")
    path = ensure_demos(cfg, encoder, log)
    key = check_demos(path, cfg, encoder)
    sha = memoized_sha256(path, memo_dir=cfg.cache.dir)
    eps = read_episodes(path, cfg.demos.num, ["proprio"], cfg)  # actions + proprio; frames only on a cache miss

    def load_obs():
        return [np.asarray(e.obs[key]) for e in read_episodes(path, cfg.demos.num, [key], cfg)]

    shape = demo_obs_keys(path)[2][key][1:]
    if isinstance(encoder, StateObsEncoder) and shape[0] != encoder.object_state_dim:
        encoder = StateObsEncoder(shape[0], encoder.info.frames, str(device),  # object_state of another size
                                  encoder.info.state_index)
    episodes_idx = list(range(cfg.demos.num))
    encoder.set_inference(cfg.eval.precision, cfg.eval.compile)  # the cache key records the precision
    identity = cache_identity(encoder.info, key, shape, sha, episodes_idx)
    t0 = time.perf_counter()
    feats, hit = cached_features(encoder, identity, load_obs, FeatureCache(cfg.cache.dir), cfg.cache.encode_batch,
                                 log=log)
    data = BCData(feats, [np.asarray(e.obs["proprio"]) for e in eps], [np.asarray(e.actions) for e in eps])
    return Prepared(encoder, path, sha, data, key, hit, time.perf_counter() - t0)


# --- the run ----------------------------------------------------------------------------------

def _plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg


def results_header(cfg, prep: Prepared, policy) -> dict:
    info = prep.encoder.info
    return {
        "encoder": info.to_dict(),
        "label": info.label,
        "env": {"id": env_id(cfg.env), "task": cfg.env.task, "camera": cfg.env.camera,
                "image_size": cfg.env.image_size, "horizon": cfg.env.horizon, **env_kwargs(cfg.env)},
        "demos": {"num": cfg.demos.num, "path": str(prep.demos_path), "sha256": prep.demos_sha256,
                  "steps": prep.data.num_steps},
        "policy": policy.describe(),
        "seed": cfg.seed,
        "protocol": cfg.get("protocol", "egohod"),
        "eval_protocol": {"episodes": cfg.eval.episodes, "every": cfg.eval.every, "seed": cfg.eval.seed,
                          "seed_schedule": cfg.eval.seed_schedule, "success": cfg.env.success,
                          "heldout_seeds": heldout_seeds(cfg.eval)},
    }


class WandbLogger:
    def __init__(self, cfg, out: Path, name: str):
        self.run = None
        if cfg.wandb.mode == "disabled":
            return
        import wandb

        self.run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, mode=cfg.wandb.mode,
                              dir=str(out), name=name, config=_plain(cfg), reinit="finish_previous")

    def log(self, data: dict, step: int) -> None:
        if self.run is not None:
            self.run.log(data, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()


def checkpoint_payload(cfg, prep: Prepared, policy, optimizer, generator, results: RunResults, step: int,
                       loss: float | None) -> dict:
    return {
        "policy": policy.describe(),
        "state_dict": policy.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(generator),
        "normalization": {"input_mean": policy.input_mean.cpu(), "input_std": policy.input_std.cpu(),
                          "input_scale": policy.input_scale.cpu()},
        "shapes": prep.data.dims,
        "encoder": prep.encoder.info.to_dict(),
        "env": results.data["env"],
        "demos": results.data["demos"],
        "config": _plain(cfg),
        "results": results.data,
        "loss": loss,
    }


PREVIOUS_RUN_OUTPUTS = ("checkpoints", "results.json", "success_curve.png", "videos", "eval", "config.yaml",
                        "overrides.yaml")


def check_out_dir(cfg, out: Path) -> str:
    """What to do with ``out``: "new" (nothing to keep), "resume" (continue checkpoints/last)
    or "overwrite" (replace a previous run, ``overwrite=true``). A previous run's work is never
    replaced silently: with ``resume=false`` (or results without a checkpoint to resume) the run is
    refused unless ``overwrite=true``."""
    last = out / "checkpoints" / "last"
    has_ckpt, has_results = last.exists(), (out / "results.json").is_file()
    if not (has_ckpt or has_results):
        return "new"
    if cfg.overwrite:
        return "overwrite"
    if cfg.resume and has_ckpt:
        return "resume"
    what = f"checkpoints up to {last.resolve().name}" if has_ckpt else "results.json but no checkpoint to resume"
    hint = "resume=true continues it, " if has_ckpt else ""
    raise ConfigError(f"out={out} holds a previous run ({what}); {hint}overwrite=true replaces it, or choose "
                      "another out")


def _remove_previous_run(out: Path) -> None:
    import shutil

    for name in PREVIOUS_RUN_OUTPUTS:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _write_run_config(cfg, out: Path, overrides: list[str] | None) -> None:
    from omegaconf import OmegaConf

    from egohod.fileio import atomic_write_text

    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    if overrides is not None:
        atomic_write_text(out / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only succeeds on an empty folder
    except OSError:
        pass


def train_bc(cfg, out: str | Path, overrides: list[str] | None = None) -> dict:
    """Train and evaluate one protocol cell; returns the results dict (also in results.json).

    ``out`` is locked for the whole run; every check (config, environment, encoder, demo
    file, resume compatibility, previous run in the folder) passes before the first write to
    it (``config.yaml``, and ``overrides.yaml`` with the command-line ``overrides``)."""
    out = Path(out)
    validate(cfg)
    lock = FolderLock(out, what="robot/train_bc.py")
    lock.acquire()  # a second run in out fails here, naming the holder's PID and host
    started = False
    try:
        action = check_out_dir(cfg, out)
        run = _setup(cfg, out, action)
        if action == "overwrite":
            _remove_previous_run(out)
        _write_run_config(cfg, out, overrides)
        started = True
        return _run(cfg, out, run)
    finally:
        lock.release()
        if not started:
            _remove_if_empty(out)


@dataclass
class _Run:
    prep: Prepared
    policy: object
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    results: RunResults
    device: torch.device
    start: int
    train_seconds: float
    log: object


def _setup(cfg, out: Path, action: str) -> _Run:
    """Everything that can fail before the first write: inputs, features, policy, resume state."""
    from policies import create_policy

    log = console().print
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    prep = prepare(cfg, device, log)
    data = prep.data
    policy_cfg = dict(cfg.policy)
    pname = policy_cfg.pop("name")
    policy = create_policy(pname, data.dims["feature_dim"], data.dims["proprio_dim"], data.dims["action_dim"],
                           policy_cfg).to(device)
    mean, std = data.input_stats()
    policy.set_normalization(mean.to(device), std.to(device))
    a_mean, a_std = data.action_stats()
    policy.set_action_normalization(a_mean.to(device), a_std.to(device))
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    results = RunResults(results_header(cfg, prep, policy))
    start, train_seconds = 0, 0.0
    if action == "resume":
        start, train_seconds = _resume(out / "checkpoints" / "last", cfg, prep, policy, optimizer, generator,
                                       results, log)
    elif action == "overwrite":
        log(f"[bold yellow]overwrite=true[/]: replacing the previous run in {out}")
    return _Run(prep, policy, optimizer, generator, results, device, start, train_seconds, log)


def _run(cfg, out: Path, r: _Run) -> dict:
    prep, data, log, results = r.prep, r.prep.data, r.log, r.results
    label = prep.encoder.info.label
    log(f"[bold]BC[/] {label} | {env_id(cfg.env)} camera={cfg.env.camera} | {cfg.demos.num} demos "
        f"({data.num_steps} steps, features {data.dims['feature_dim']}-d) | policy {cfg.policy.name} | "
        f"seed {cfg.seed} | {cfg.train.steps} steps | device {r.device}")
    random_tag = "-RANDOM" if prep.encoder.info.random_weights else ""
    wb = WandbLogger(cfg, out, f"{prep.encoder.info.name}{random_tag}-{cfg.env.task}-{cfg.env.camera}-s{cfg.seed}")
    camera = cfg.env.camera if prep.encoder.needs_rgb else None
    pool = EvalEnvs(env_id(cfg.env), cfg.eval.num_envs, camera, cfg.env.image_size, cfg.env.horizon,
                    env_kwargs(cfg.env))
    try:
        _loop(cfg, out, r, pool, wb)
        _best_heldout(cfg, out, r, pool)
        _final_videos(cfg.eval, cfg.env, prep.encoder, r.policy, out, r.device, log)
        results.data["complete"] = True
        results.data["timing"]["feature_seconds"] = round(prep.feature_seconds, 2)
        results.data["timing"]["feature_cache_hit"] = prep.feature_cache_hit
        results.save(out / "results.json")
    finally:
        pool.close()
        wb.finish()
    held = results.data.get("best_heldout")
    held_txt = f", best_heldout {100 * held['success_rate']:.1f}%" if held else ""
    log(f"\n[bold]{label}[/]: best {100 * results.data['best']['success_rate']:.1f}% "
        f"(step {results.data['best']['step']}), final {100 * results.data['final']['success_rate']:.1f}%{held_txt}  "
        f"-> {out / 'results.json'}")
    print(summary_table([results.data]), flush=True)
    return results.data


def _resume(last: Path, cfg, prep, policy, optimizer, generator, results, log) -> tuple[int, float]:
    ckpt = load_checkpoint(last)
    mine = prep.encoder.info.to_dict()
    theirs = ckpt["encoder"]
    for k in ("name", "weights", "frames"):
        if theirs.get(k) != mine.get(k):
            raise ConfigError(f"cannot resume from {ckpt['path']}: it was trained with encoder {k}={theirs.get(k)!r}, "
                              f"this run has {mine.get(k)!r}. Use another out or resume=false")
    if ckpt["demos"]["sha256"] != prep.demos_sha256 or ckpt["policy"] != policy.describe():
        raise ConfigError(f"cannot resume from {ckpt['path']}: its demos or policy differ from this run's; "
                          "use another out or resume=false")
    policy.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"], generator)
    results.data["evals"] = []
    for e in ckpt["results"]["evals"]:
        results.add_eval(e["step"], {k: v for k, v in e.items() if k != "step"})
    log(f"resume: from {ckpt['path']} at step {ckpt['step']}")
    return int(ckpt["step"]), float(ckpt["results"].get("train", {}).get("seconds", 0.0))


def _loop(cfg, out: Path, r: _Run, pool: EvalEnvs, wb: WandbLogger) -> None:
    """Updates from ``r.start`` to ``train.steps``, with an evaluation, results, plot and checkpoint
    every ``eval.every`` steps (and after the last)."""
    from tqdm.auto import tqdm

    prep, policy, optimizer, generator, results = r.prep, r.policy, r.optimizer, r.generator, r.results
    device, start, train_seconds = r.device, r.start, r.train_seconds
    data = prep.data
    seq_len = policy.seq_len
    loss = None
    eval_seconds = results.data.get("timing", {}).get("eval_seconds", 0.0)
    split = dict(results.data.get("timing", {}).get("eval_split", {}))  # env (physics + render), encode, policy
    losses: list[float] = []
    bar = tqdm(range(start, cfg.train.steps), initial=start, total=cfg.train.steps, desc="train", unit="step",
               mininterval=2.0)
    threads = torch.get_num_threads()
    if device.type == "cpu" and cfg.train.cpu_threads:
        # small heads: more intra-op threads mostly add synchronisation; measured 28x slower
        # updates with 2 threads on a busy 2-core machine (the rollout encoder gets them all back)
        torch.set_num_threads(cfg.train.cpu_threads)
    t_start = time.perf_counter()
    for i in bar:
        step = i + 1
        batch = data.sample(cfg.train.batch_size, seq_len, generator).to(device)
        loss = train_step(policy, optimizer, batch, cfg.train.grad_clip)
        losses.append(loss)
        if step % cfg.train.log_every == 0 or step == cfg.train.steps:
            mean_loss = float(np.mean(losses))
            losses.clear()
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            wb.log({"train/loss": mean_loss}, step)
        if step % cfg.eval.every == 0 or step == cfg.train.steps:
            train_seconds += time.perf_counter() - t_start
            t_eval = time.perf_counter()
            seed0 = eval_seed0(cfg, step, data.num_steps)
            res = evaluate(policy, prep.encoder, pool, cfg.eval.episodes, seed0, device, desc=f"eval@{step}",
                           encode_batch=cfg.eval.encode_batch, timing=split, threads=rollout_threads(cfg, device))
            res["seed0"] = seed0
            eval_seconds += time.perf_counter() - t_eval
            results.add_eval(step, res)
            results.data["train"] = {"steps": step, "loss": loss, "seconds": round(train_seconds, 2)}
            results.data["timing"] = {"train_seconds": round(train_seconds, 2), "eval_seconds": round(eval_seconds, 2),
                                      "eval_split": {k: round(v, 3) for k, v in split.items()}}
            results.save(out / "results.json")
            plot_success_curve(results.data, out / "success_curve.png")
            save_checkpoint(out, step, checkpoint_payload(cfg, prep, policy, optimizer, generator, results, step, loss))
            wb.log({"eval/success_rate": res["success_rate"]}, step)
            bar.write(f"step {step}: success {100 * res['success_rate']:.1f}% ({cfg.eval.episodes} episodes), "
                      f"loss {loss:.4f}  [{prep.encoder.info.label}]")
            t_start = time.perf_counter()
    bar.close()
    torch.set_num_threads(threads)
    if "timing" not in results.data:
        results.data["timing"] = {"train_seconds": round(train_seconds, 2), "eval_seconds": round(eval_seconds, 2)}


ROLLOUT_ENCODER_THREADS = torch.get_num_threads()  # the process's default, before any run narrows it


def rollout_threads(cfg, device) -> Threads | None:
    """On CPU: the encoder's forward on every core (as the process started), the head on
    ``train.cpu_threads`` like the updates."""
    if device.type != "cpu" or not cfg.train.cpu_threads:
        return None
    return Threads(encoder=ROLLOUT_ENCODER_THREADS, head=cfg.train.cpu_threads)


def eval_seed0(cfg, step: int, num_samples: int) -> int:
    """First episode seed of the evaluation after ``step`` updates. ``fixed``: ``eval.seed`` every
    time. ``per_epoch`` (R3M's ``train_loop.py``: ``base_seed = seed + epoch``): ``eval.seed + seed +
    epoch``, where ``epoch`` is the 0-based BC epoch (``num_samples // batch_size`` updates) in which
    the evaluation falls; offset by ``eval.seed`` so that the seeds stay clear of the demo seeds."""
    if cfg.eval.seed_schedule == "fixed":
        return int(cfg.eval.seed)
    per_epoch = max(1, num_samples // cfg.train.batch_size)
    epoch = -(-step // per_epoch) - 1  # ceil(step / per_epoch) - 1
    return int(cfg.eval.seed + cfg.seed + epoch)


def heldout_seeds(eval_cfg) -> list[int] | None:
    """``[first, last]`` episode seeds of the best_heldout evaluation (None when it is off)."""
    if not eval_cfg.heldout_episodes:
        return None
    return [int(eval_cfg.heldout_seed), int(eval_cfg.heldout_seed + eval_cfg.heldout_episodes - 1)]


def _best_heldout(cfg, out: Path, r: _Run, pool: EvalEnvs) -> None:
    """Re-evaluate the best checkpoint (the evaluation ``best`` names) on the held-out seeds, which
    no evaluation used to choose it; stored as ``best_heldout`` (kept when resuming finds it done)."""
    results = r.results
    best = results.data.get("best")
    if not cfg.eval.heldout_episodes or best is None:
        return
    done = results.data.get("best_heldout")
    if done and done.get("step") == best["step"] and done.get("seeds") == heldout_seeds(cfg.eval):
        return
    ckpt = load_checkpoint(out / "checkpoints" / f"{best['step']:07d}")
    policy = build_policy_from_checkpoint(ckpt).to(r.device)
    res = evaluate(policy, r.prep.encoder, pool, cfg.eval.heldout_episodes, cfg.eval.heldout_seed, r.device,
                   desc=f"heldout@{best['step']}", encode_batch=cfg.eval.encode_batch,
                   threads=rollout_threads(cfg, r.device))
    results.set_heldout(best["step"], res, heldout_seeds(cfg.eval), ckpt["path"])
    results.save(out / "results.json")
    r.log(f"best_heldout: checkpoint of step {best['step']} on seeds {cfg.eval.heldout_seed}.."
          f"{cfg.eval.heldout_seed + cfg.eval.heldout_episodes - 1}: {100 * res['success_rate']:.1f}% "
          f"(best on the evaluation seeds: {100 * best['success_rate']:.1f}%)")


def _final_videos(eval_cfg: EvalConfig, env_cfg: EnvConfig, encoder: ObsEncoder, policy, out: Path, device,
                  log) -> list[Path]:
    """A few rollout mp4s of the final policy (the first evaluation seeds), named with their outcome."""
    k = min(eval_cfg.videos, eval_cfg.episodes)
    if k <= 0:
        return []
    pool = EvalEnvs(env_id(env_cfg), k, env_cfg.camera, env_cfg.image_size, env_cfg.horizon, env_kwargs(env_cfg))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(eval_cfg.seed)
            records, videos = run_episodes(policy, encoder, pool, [eval_cfg.seed + i for i in range(k)], device,
                                           record=k)
    finally:
        pool.close()
    vdir = out / "videos"
    vdir.mkdir(exist_ok=True)
    paths = []
    for r, frames in zip(records, videos):
        p = vdir / f"seed{r.seed}_{'success' if r.success else 'failure'}.mp4"
        write_video(p, frames)
        paths.append(p)
    log(f"videos: {len(paths)} rollouts -> {vdir}")
    return paths


def _checkpoint_encoder_seed(ckpt: dict) -> int:
    """Seed of the random encoder a policy was trained on (0 for encoders with a weights file)."""
    enc = ckpt["encoder"]
    if not is_random_weights(enc["weights"]):
        return 0
    seed = random_weights_seed(enc["weights"])
    if seed is None:
        raise ConfigError(f"{ckpt['path']} was trained on an unseeded random {enc['name']} encoder (weights "
                          "'random', from before random weights were seeded): that encoder cannot be rebuilt, "
                          "so its policy cannot be evaluated; retrain it")
    return seed


def encoder_from_checkpoint(ckpt: dict, device: torch.device, encoder_checkpoint: str | None = None) -> ObsEncoder:
    """The encoder a policy checkpoint was trained on: the same weights file (sha256 checked) or
    the same seeded random weights (``random:seed=N``)."""
    enc = ckpt["encoder"]
    enc_ckpt = encoder_checkpoint or enc.get("checkpoint")
    seed = _checkpoint_encoder_seed(ckpt)
    if not is_random_weights(enc["weights"]) and enc["weights"] != "none":
        if not enc_ckpt or not Path(enc_ckpt).is_file():
            raise FileNotFoundError(f"the policy was trained on encoder {enc['name']} with weights sha256 "
                                    f"{enc['weights'][:16]}..., whose file {enc_ckpt!r} is not found; "
                                    "pass encoder_checkpoint=PATH")
        sha = memoized_sha256(enc_ckpt)
        if sha != enc["weights"]:
            raise ConfigError(f"encoder/checkpoint mismatch: {enc_ckpt} has sha256 {sha[:16]}..., the policy was "
                              f"trained on weights {enc['weights'][:16]}...")
    index = enc.get("state_index")  # absent in checkpoints of encoders that keep every entry
    if index is None:
        object_state_dim = enc["embed_dim"] // enc["frames"]
    else:
        from envs.kitchen_env import OBJECT_STATE_DIM as object_state_dim
    has_file = not is_random_weights(enc["weights"]) and enc["weights"] != "none"
    encoder = build_obs_encoder(enc["name"], enc_ckpt if has_file else None, enc["frames"], str(device),
                                object_state_dim=object_state_dim, state_index=index, seed=seed)
    if encoder.info.weights != enc["weights"]:  # the same seed or the same file: the training encoder
        raise ConfigError(f"rebuilt encoder {enc['name']} has weights {encoder.info.weights!r}, the policy was "
                          f"trained on {enc['weights']!r}")
    if encoder.info.embed_dim != ckpt["shapes"]["feature_dim"]:
        raise ConfigError(f"encoder {enc['name']} gives {encoder.info.embed_dim}-d features, the policy expects "
                          f"{ckpt['shapes']['feature_dim']}-d")
    return encoder


def evaluate_checkpoint(checkpoint: str | Path, eval_cfg, device_name: str = "auto",
                        encoder_checkpoint: str | None = None, out: str | Path | None = None,
                        trust_pickle: bool = False) -> dict:
    """Re-evaluate a saved policy (``robot/eval_bc.py``)."""
    ckpt = load_checkpoint(checkpoint, trust_pickle=trust_pickle)
    device = resolve_device(device_name)
    encoder = encoder_from_checkpoint(ckpt, device, encoder_checkpoint)
    encoder.set_inference(eval_cfg.precision, eval_cfg.compile)
    policy = build_policy_from_checkpoint(ckpt).to(device)
    env = ckpt["env"]
    cfg_env = ckpt["config"]["env"]
    camera = env["camera"] if encoder.needs_rgb else None  # videos render in their own pool
    env_cfg = EnvConfig(**{f.name: cfg_env[f.name] for f in fields(EnvConfig) if f.name in cfg_env})
    pool = EvalEnvs(env_id(env_cfg), eval_cfg.num_envs, camera, env["image_size"], env["horizon"], env_kwargs(env_cfg))
    ckpt_dir = Path(ckpt["path"]).resolve().parent
    out = Path(out) if out else ckpt_dir.parent.parent / "eval" / ckpt_dir.name
    out.mkdir(parents=True, exist_ok=True)
    con = console()
    if encoder.info.random_weights:
        con.print(f"[bold red]encoder {encoder.info.name}: RANDOM WEIGHTS[/] (seed {encoder.info.seed}, as in training)")
    try:
        res = evaluate(policy, encoder, pool, eval_cfg.episodes, eval_cfg.seed, device, desc="eval",
                       encode_batch=eval_cfg.encode_batch)
    finally:
        pool.close()
    header = {k: v for k, v in ckpt["results"].items() if k not in ("evals", "best", "final", "train", "complete",
                                                                       "timing", "best_heldout")}
    results = RunResults(header)
    results.add_eval(int(ckpt["step"]), res)
    results.data["complete"] = True
    results.data["evaluated_checkpoint"] = ckpt["path"]
    results.save(out / "results.json")
    if eval_cfg.videos:
        _final_videos(eval_cfg, env_cfg, encoder, policy, out, device, con.print)
    print(summary_table([results.data]), flush=True)
    return results.data
