"""The whole classic Franka Kitchen sweep (tasks x cameras x demo counts x seeds) as one
resumable command::

    python robot/sweep.py protocol=r3m encoder=egovideo_b encoder.checkpoint=base.pt \\
        tasks=all cameras=left,right demos=5,10,25 seeds=0,1,2 workers=4 out=outputs/sweep/b
    python robot/sweep.py encoder=state tasks=microwave,slide_cabinet seeds=0,1 launcher=ray

Sweep keys: ``tasks`` (``all`` = the five classic tasks, or a comma list), ``cameras``, ``demos``,
``seeds`` (comma lists), ``workers`` (cells at a time on this machine), ``launcher``
(``local`` | ``ray`` | ``slurm``), ``out`` (``out_dir``, its old name, is still accepted), ``envs_per_cell`` and the ``ray.*`` / ``slurm.*``
options of configs/robot/sweep.yaml. Every other argument is a ``robot/train_bc.py`` override
passed to every cell (``protocol=...``, ``encoder=...``, ``train.steps=...``); the whole cell
config is composed and checked before anything runs.

What is shared: one demo file per task (every camera of the sweep, as many demos as the largest
``demos`` value; each cell trains on its first ``demos.num``), generated into the demo cache of
``robot/train_bc.py`` (``demos.cache_dir``) before any cell starts; one entry of the feature cache
(``cache.dir``) per (encoder, camera, task, demo count), filled here before the cells start, so
every cell reads its features from the cache. Nothing else is cached.

Outputs in ``out`` (held with a :class:`egohod.fileio.FolderLock`): ``cells/<task>_<camera>_<N>demos_s<seed>/``
(a ``robot/train_bc.py`` run folder each), ``state/<cell>.json`` (per-cell state: pending, running,
done or failed, attempts, seconds, the log's tail on failure), ``logs/<cell>.log``,
``table.md``, ``sweep.json`` and ``sweep.png``. Re-running the same command resumes: done cells are
skipped, failed and interrupted cells run again (an interrupted cell continues from its last
checkpoint). A re-run whose cell overrides differ from the recorded ones is refused.

Cells run as processes: a pool of ``workers`` on this machine (``launcher=local``), one Ray task
per cell (``launcher=ray``; ``ray.address`` of a cluster, ``ray.gpus_per_cell`` for GPU-aware
placement), or Slurm jobs through Hydra's submitit launcher (``launcher=slurm``; needs the
``slurm`` extra). ``egohod-sweep ...`` is the same command.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egohod.config import rename_arguments
from egohod.fileio import FolderLock, atomic_write_json, atomic_write_text

from robot.config import CONFIG_ROOT, RENAMED, ConfigError

CLASSIC_TASKS = ["slide_cabinet", "hinge_cabinet", "microwave", "knob", "light_switch"]
LIST_KEYS = ("tasks", "cameras", "demos", "seeds")
SWEEP_KEYS = LIST_KEYS + ("workers", "launcher", "out", "envs_per_cell", "ray", "slurm")
# set per cell by the sweep; a pass-through override of one of these would be ambiguous
CELL_KEYS = {"env.task": "tasks", "env.camera": "cameras", "demos.num": "demos", "seed": "seeds",
             "demos.path": None, "out": "out"}
LAUNCHERS = ("local", "ray", "slurm")


@dataclass
class RaySweepConfig:
    address: Optional[str] = None     # null: a local Ray instance (or the one already initialised)
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0        # e.g. 0.25: four cells share one GPU (Ray sets CUDA_VISIBLE_DEVICES)


@dataclass
class SlurmSweepConfig:
    hydra_launcher: str = "submitit_slurm"   # submitit_local runs the same jobs on this machine (a dry run)
    partition: Optional[str] = None
    timeout_min: int = 720
    cpus_per_task: int = 8
    gpus_per_node: int = 1
    mem_gb: int = 64
    array_parallelism: int = 64


@dataclass
class SweepConfig:
    tasks: Any = "all"                # "all" (the five classic tasks) or a list
    cameras: Any = field(default_factory=lambda: ["left", "right"])
    demos: Any = field(default_factory=lambda: [5, 10, 25])
    seeds: Any = field(default_factory=lambda: [0, 1, 2])
    workers: int = 1                  # cells at a time (launcher=local)
    launcher: str = "local"           # local | ray | slurm
    out: Optional[str] = None         # null: outputs/sweep/<encoder>
    envs_per_cell: int = 0            # evaluation env processes per cell; 0: cores // workers (unless eval.num_envs is given)
    ray: RaySweepConfig = field(default_factory=RaySweepConfig)
    slurm: SlurmSweepConfig = field(default_factory=SlurmSweepConfig)


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    from robot.config import register_configs as register_robot

    register_robot()
    ConfigStore.instance().store(group="robot", name="sweep_schema", node=SweepConfig)


# --- arguments -------------------------------------------------------------------------------

def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(sweep overrides, cell overrides). Comma lists of the list keys become Hydra lists."""
    sweep, cell = [], []
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r} is not key=value")
        key, value = arg.split("=", 1)
        top = key.lstrip("+~").split(".", 1)[0]
        if key in SWEEP_KEYS or top in ("ray", "slurm"):  # demos.cache_dir etc. are cell keys
            if key in LIST_KEYS and not value.startswith("["):
                value = "[" + value + "]" if not (key == "tasks" and value == "all") else value
            sweep.append(f"{key}={value}")
            continue
        if key.lstrip("+~") in CELL_KEYS:
            instead = CELL_KEYS[key.lstrip("+~")]
            raise ConfigError(f"{key}= is set per cell by the sweep" + (f"; use {instead}=..." if instead else ""))
        cell.append(arg)
    return sweep, cell


def _compose(config_name: str, overrides: list[str]):
    """``configs/<config_name>.yaml`` from the config root (its defaults name groups such as
    ``/encoder`` from there, which :func:`egohod.config.compose` cannot resolve)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_ROOT), version_base="1.3"):
            return compose(config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"{config_name}: {e}") from None
    finally:
        GlobalHydra.instance().clear()


def compose_sweep(overrides: list[str]):
    cfg = _compose("robot/sweep", overrides)
    if cfg.launcher not in LAUNCHERS:
        raise ConfigError(f"launcher={cfg.launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    if cfg.workers < 1:
        raise ConfigError(f"workers must be >= 1, got {cfg.workers}")
    return cfg


def compose_cell(overrides: list[str]):
    """The ``robot/train_bc.py`` config of one cell (unknown keys are errors here)."""
    return _compose("robot/train_bc", overrides)


# --- cells -----------------------------------------------------------------------------------

@dataclass
class Cell:
    task: str
    camera: str
    demos: int
    seed: int
    overrides: list[str]   # the full robot/train_bc.py command line of the cell

    @property
    def name(self) -> str:  # also hydra.sweep.subdir of the slurm launcher: keep the two in step
        return f"{self.task}_{self.camera}_{self.demos}demos_s{self.seed}"


def _as_list(v, what: str) -> list:
    items = list(v) if not isinstance(v, (str, int)) else [v]
    if not items:
        raise ConfigError(f"{what} is empty")
    if len(set(map(str, items))) != len(items):
        raise ConfigError(f"{what} repeats a value: {items}")
    return items


def sweep_axes(cfg) -> dict:
    tasks = CLASSIC_TASKS if cfg.tasks == "all" else [str(t) for t in _as_list(cfg.tasks, "tasks")]
    return {"tasks": tasks, "cameras": [str(c) for c in _as_list(cfg.cameras, "cameras")],
            "demos": sorted(int(d) for d in _as_list(cfg.demos, "demos")),
            "seeds": [int(s) for s in _as_list(cfg.seeds, "seeds")]}


@dataclass
class Plan:
    out: Path
    axes: dict
    base: list[str]                 # pass-through overrides
    needs_rgb: bool
    demo_files: dict[str, Path]     # task -> shared demo file
    cells: list[Cell]


def envs_per_cell(cfg, base: list[str]) -> int | None:
    """Evaluation env processes of each cell: ``envs_per_cell``, else the cores a cell has (this
    machine's cores shared by the ``workers`` cells at once; ``ray.cpus_per_cell``;
    ``slurm.cpus_per_task``); None when the cell overrides name ``eval.num_envs`` themselves."""
    if any(o.split("=", 1)[0] == "eval.num_envs" for o in base):
        return None
    if cfg.envs_per_cell > 0:
        return int(cfg.envs_per_cell)
    if cfg.launcher == "ray":
        return max(1, int(cfg.ray.cpus_per_cell))
    if cfg.launcher == "slurm":
        return max(1, int(cfg.slurm.cpus_per_task))
    return max(1, (os.cpu_count() or 1) // cfg.workers)


def plan_sweep(cfg, base: list[str]) -> Plan:
    from robot.obs_encoders import obs_encoder_class
    from robot.run_bc import check_protocol, generated_demos_path

    axes = sweep_axes(cfg)
    probe = compose_cell(base + [f"env.task={axes['tasks'][0]}", f"env.camera={axes['cameras'][0]}",
                                 f"demos.num={axes['demos'][-1]}", f"seed={axes['seeds'][0]}", "out=unused"])
    needs_rgb = obs_encoder_class(probe.encoder.name).needs_rgb
    if not needs_rgb and len(axes["cameras"]) > 1:
        print(f"sweep: encoder=state reads no pixels: cameras {axes['cameras']} give the same runs; "
              f"running camera {axes['cameras'][0]} only", file=sys.stderr)
        axes["cameras"] = axes["cameras"][:1]
    for camera in axes["cameras"]:   # before any demo or feature work, as every cell would refuse it
        probe.env.camera = camera
        check_protocol(probe)
    out = Path(cfg.out or f"outputs/sweep/{probe.encoder.name}").resolve()
    cams = axes["cameras"] if needs_rgb else []
    demo_files = {}
    for t in axes["tasks"]:
        probe.env.task = t
        demo_files[t] = generated_demos_path(probe, cams, axes["demos"][-1]).resolve()
    n_envs = envs_per_cell(cfg, base)
    cells = []
    for task in axes["tasks"]:
        for camera in axes["cameras"]:
            for demos in axes["demos"]:
                for seed in axes["seeds"]:
                    cell = Cell(task, camera, demos, seed, [])
                    cell.overrides = base + [f"env.task={task}", f"env.camera={camera}", f"demos.num={demos}",
                                             f"seed={seed}", f"demos.path={demo_files[task]}",
                                             f"out={out / 'cells' / cell.name}"] + \
                        ([f"eval.num_envs={n_envs}"] if n_envs else [])
                    cells.append(cell)
    return Plan(out, axes, base, needs_rgb, demo_files, cells)


# --- per-cell state ----------------------------------------------------------------------------

def state_path(out: Path, cell: Cell) -> Path:
    return out / "state" / f"{cell.name}.json"


def read_state(out: Path, cell: Cell) -> dict:
    p = state_path(out, cell)
    if p.is_file():
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            pass  # a state file is written atomically; unreadable means damaged by hand: start over
    return {"cell": cell.name, "status": "pending", "attempts": 0, "overrides": cell.overrides}


def write_state(out: Path, cell: Cell, state: dict) -> None:
    atomic_write_json(state_path(out, cell), state)


def cell_results(out: Path, cell: Cell) -> dict | None:
    p = out / "cells" / cell.name / "results.json"
    try:
        r = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return r if r.get("complete") else None


def recorded_in_current_names(overrides: list[str]) -> list[str]:
    """A cell's recorded overrides with settings renamed since (``out_dir=`` -> ``out=``), so a
    sweep folder started before a rename resumes; no warning, as nobody typed the old name."""
    return rename_arguments(overrides, RENAMED, warn=False)


def check_recorded_overrides(plan: Plan) -> None:
    """A sweep folder holds one sweep: the same cell overrides on every re-run."""
    for cell in plan.cells:
        p = state_path(plan.out, cell)
        if not p.is_file():
            continue
        recorded = read_state(plan.out, cell).get("overrides")
        recorded = None if recorded is None else recorded_in_current_names(recorded)
        if recorded is not None and recorded != cell.overrides:
            diff = sorted(set(recorded) ^ set(cell.overrides))
            raise ConfigError(f"{plan.out} holds a sweep whose cell {cell.name} ran with other overrides "
                              f"(differing: {', '.join(diff)}); re-run with the same arguments to resume it, "
                              "or choose another out")


def pending_cells(plan: Plan) -> list[Cell]:
    todo = []
    for cell in plan.cells:
        st = read_state(plan.out, cell)
        if st["status"] == "done" and cell_results(plan.out, cell) is not None:
            continue
        todo.append(cell)
    return todo


# --- shared demos and features -------------------------------------------------------------------

def prepare_shared(plan: Plan, cells: list[Cell], log=print) -> dict:
    """Generate the demo file of each task of ``cells``, then fill the feature cache once per
    feature set they use; return what was done (``demos``: per task generated or reused,
    ``features``: per set cache hit or computed, and seconds)."""
    import torch

    from egohod.device import resolve_device
    from robot.run_bc import generate_cell_demos, prepare

    done = {"demos": {}, "features": {}}
    cams = plan.axes["cameras"] if plan.needs_rgb else []
    first = {}
    for cell in cells:
        first.setdefault(cell.task, cell)
    for task, cell in first.items():
        cfg = compose_cell(cell.overrides)
        path, stats = generate_cell_demos(cfg, cams, plan.axes["demos"][-1], log=log, return_stats=True)
        if Path(path).resolve() != plan.demo_files[task]:
            raise RuntimeError(f"demo file {path} is not the planned {plan.demo_files[task]}")
        done["demos"][task] = {"path": str(path), "generated": not stats.reused}
    seen = set()
    device = resolve_device(compose_cell(cells[0].overrides).device)
    for cell in cells:
        cfg = compose_cell(cell.overrides)
        random_seed = cfg.encoder.checkpoint is None and cfg.encoder.get("seed") is None and plan.needs_rgb
        key = (cell.task, cell.camera, cell.demos, cell.seed if random_seed else None)
        if key in seen:
            continue
        seen.add(key)
        with torch.inference_mode():
            prep = prepare(cfg, device, log=log)
        done["features"]["/".join(str(k) for k in key if k is not None)] = \
            {"cache_hit": prep.feature_cache_hit, "seconds": round(prep.feature_seconds, 2)}
    return done


# --- launchers -----------------------------------------------------------------------------------

def cell_command(cell: Cell) -> list[str]:
    return [sys.executable, "-m", "robot.sweep_cell", *cell.overrides]


def run_cell_process(cmd: list[str], log_path: str, cwd: str, env: dict | None = None) -> int:
    """Run one cell's process with its output in ``log_path``; its exit code."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logf:
        logf.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        logf.flush()
        return subprocess.call(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=cwd, env=env)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class CellRunner:
    """Marks a cell running, then done or failed from its exit code and results.json."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def log_path(self, cell: Cell) -> Path:
        return self.plan.out / "logs" / f"{cell.name}.log"

    def started(self, cell: Cell) -> dict:
        st = read_state(self.plan.out, cell)
        st.update(status="running", attempts=st.get("attempts", 0) + 1, overrides=cell.overrides,
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), log=str(self.log_path(cell)))
        st.pop("error", None)
        st["_t0"] = time.time()
        write_state(self.plan.out, cell, {k: v for k, v in st.items() if k != "_t0"})
        return st

    def finished(self, cell: Cell, st: dict, rc: int | None, error: str | None = None) -> bool:
        res = cell_results(self.plan.out, cell)
        ok = rc == 0 and res is not None
        st.update(status="done" if ok else "failed", returncode=rc, seconds=round(time.time() - st.pop("_t0"), 2),
                  finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        if not ok:
            st["error"] = error or (f"exit code {rc}" + ("" if res is None else "") + "; log tail:\n" +
                                    _log_tail(self.log_path(cell)))
        write_state(self.plan.out, cell, st)
        return ok


def run_local(plan: Plan, cells: list[Cell], workers: int, log=print) -> None:
    from tqdm.auto import tqdm

    from robot.sweep_cell import PARENT_ENV

    runner = CellRunner(plan)
    env = {**os.environ, PARENT_ENV: str(os.getpid())}

    def one(cell: Cell) -> tuple[Cell, bool]:
        st = runner.started(cell)
        try:
            rc = run_cell_process(cell_command(cell), str(runner.log_path(cell)), os.getcwd(), env)
        except OSError as exc:
            return cell, runner.finished(cell, st, None, f"could not start: {exc}")
        return cell, runner.finished(cell, st, rc)

    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=len(cells), desc="cells", unit="cell") as bar:
        for fut in as_completed([pool.submit(one, c) for c in cells]):
            cell, ok = fut.result()
            bar.update(1)
            if not ok:
                bar.write(f"cell {cell.name} FAILED (see {runner.log_path(cell)})")


def run_ray(plan: Plan, cells: list[Cell], cfg, log=print) -> None:
    """One Ray task per cell; Ray places them by ``ray.cpus_per_cell`` / ``ray.gpus_per_cell``."""
    import ray
    from tqdm.auto import tqdm

    if not ray.is_initialized():
        ray.init(address=cfg.ray.address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=cfg.ray.cpus_per_cell, num_gpus=cfg.ray.gpus_per_cell, max_retries=0)(run_cell_process)
    runner = CellRunner(plan)
    pending = {}
    for cell in cells:
        st = runner.started(cell)
        ref = task.remote(cell_command(cell), str(runner.log_path(cell)), os.getcwd())
        pending[ref] = (cell, st)
    with tqdm(total=len(cells), desc="cells (ray)", unit="cell") as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell, st = pending.pop(ready[0])
            try:
                rc, err = ray.get(ready[0]), None
            except Exception as exc:  # the task itself failed (worker died, ...): record it, go on
                rc, err = None, f"ray task failed: {exc!r}"
            if not runner.finished(cell, st, rc, err):
                bar.write(f"cell {cell.name} FAILED (see {runner.log_path(cell)})")
            bar.update(1)


def slurm_commands(plan: Plan, cells: list[Cell], cfg) -> list[list[str]]:
    """One ``robot/sweep_cell`` Hydra multirun per task through the submitit Slurm launcher; the
    job folders are the cells' folders (``hydra.sweep.subdir`` = :attr:`Cell.name`)."""
    per_cell = {"env.task", "env.camera", "demos.num", "seed", "demos.path", "out"}
    cmds = []
    for task in plan.axes["tasks"]:
        mine = [c for c in cells if c.task == task]
        if not mine:
            continue
        s = cfg.slurm
        common = [o for o in mine[0].overrides if o.split("=", 1)[0] not in per_cell]
        cmds.append([sys.executable, "-m", "robot.sweep_cell", "--multirun", f"hydra/launcher={s.hydra_launcher}",
                     *common, f"env.task={task}", f"demos.path={plan.demo_files[task]}",
                     "env.camera=" + ",".join(sorted({c.camera for c in mine})),
                     "demos.num=" + ",".join(str(d) for d in sorted({c.demos for c in mine})),
                     "seed=" + ",".join(str(x) for x in sorted({c.seed for c in mine})),
                     f"hydra.sweep.dir={plan.out / 'cells'}",
                     "hydra.sweep.subdir=${env.task}_${env.camera}_${demos.num}demos_s${seed}",
                     *([f"hydra.launcher.partition={s.partition}"] if s.partition else []),
                     f"hydra.launcher.timeout_min={s.timeout_min}", f"hydra.launcher.cpus_per_task={s.cpus_per_task}",
                     f"hydra.launcher.gpus_per_node={s.gpus_per_node}", f"hydra.launcher.mem_gb={s.mem_gb}",
                     f"hydra.launcher.array_parallelism={s.array_parallelism}"])
        if s.hydra_launcher != "submitit_slurm":  # submitit_local: no Slurm options
            cmds[-1] = [a for a in cmds[-1] if not a.startswith(("hydra.launcher.partition", "hydra.launcher.mem_gb",
                                                                   "hydra.launcher.array_parallelism"))]
    return cmds


def run_slurm(plan: Plan, cells: list[Cell], cfg, log=print) -> None:
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError as exc:
        raise ConfigError("launcher=slurm needs Hydra's submitit launcher: pip install 'egohod[slurm]'") from exc
    runner = CellRunner(plan)
    states = {c.name: runner.started(c) for c in cells}
    for cmd in slurm_commands(plan, cells, cfg):
        log("sweep: " + " ".join(cmd))
        subprocess.call(cmd)  # blocks until the task's jobs end; each cell's outcome is read below
    for c in cells:
        runner.finished(c, states[c.name], 0 if cell_results(plan.out, c) is not None else 1,
                        None if cell_results(plan.out, c) is not None else
                        f"no complete results.json after the Slurm jobs; see {plan.out / 'cells' / c.name}")


# --- report ---------------------------------------------------------------------------------------

def write_report(plan: Plan, wall_seconds: float, shared: dict | None, launcher: str) -> dict:
    from robot.sweep_report import markdown_table, plot_rows, table_rows

    runs, cells = [], []
    for cell in plan.cells:
        st = read_state(plan.out, cell)
        res = cell_results(plan.out, cell)
        if res is not None:
            runs.append(res)
        cells.append({"cell": cell.name, "task": cell.task, "camera": cell.camera, "demos": cell.demos,
                      "seed": cell.seed, "status": "done" if res is not None else st["status"],
                      "attempts": st.get("attempts", 0), "seconds": st.get("seconds"),
                      **({"error": st["error"]} if st.get("error") and res is None else {})})
    rows = table_rows(runs)
    labels = sorted({r.get("label") or r["encoder"]["name"] for r in runs})
    random = any(r["encoder"].get("random_weights") for r in runs)
    title = ", ".join(labels) if not random else f"{runs[0]['encoder']['name']} (RANDOM WEIGHTS)"
    table = markdown_table(rows, title=title) if runs else "(no finished cells)"
    atomic_write_text(plan.out / "table.md", table + "\n")
    if rows:
        plot_rows(rows, plan.out / "sweep.png", title=title)
    import platform

    summary = {"format": "egohod-bc-sweep/1", "out": str(plan.out), "axes": plan.axes, "overrides": plan.base,
               "launcher": launcher, "encoder": title, "random_weights": random,
               "cells": cells, "done": sum(c["status"] == "done" for c in cells),
               "failed": sum(c["status"] == "failed" for c in cells), "rows": rows,
               "wall_seconds": round(wall_seconds, 2), "shared": shared,
               "machine": {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version()}}
    atomic_write_json(plan.out / "sweep.json", summary, indent=1)
    print(table, flush=True)
    return summary


def run_sweep(cfg, base: list[str], log=print) -> dict:
    plan = plan_sweep(cfg, base)
    lock = FolderLock(plan.out, what="robot/sweep.py")
    lock.acquire()  # a second sweep in out fails at once, naming the holder
    try:
        t0 = time.time()
        check_recorded_overrides(plan)
        for cell in plan.cells:
            if not state_path(plan.out, cell).is_file():
                write_state(plan.out, cell, read_state(plan.out, cell))
        todo = pending_cells(plan)
        log(f"sweep: {len(plan.cells)} cells ({len(plan.axes['tasks'])} tasks x {len(plan.axes['cameras'])} cameras x "
            f"{len(plan.axes['demos'])} demo counts x {len(plan.axes['seeds'])} seeds), {len(todo)} to run -> {plan.out}")
        shared = prepare_shared(plan, todo, log) if todo else None
        if todo:
            if cfg.launcher == "local":
                run_local(plan, todo, cfg.workers, log)
            elif cfg.launcher == "ray":
                run_ray(plan, todo, cfg, log)
            else:
                run_slurm(plan, todo, cfg, log)
        return write_report(plan, time.time() - t0, shared, cfg.launcher)
    finally:
        lock.release()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("WANDB_SILENT", "true")
    argv = rename_arguments(sys.argv[1:] if argv is None else list(argv), RENAMED, "robot/sweep.py")
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        sweep_overrides, base = split_argv(argv)
        cfg = compose_sweep(sweep_overrides)
        summary = run_sweep(cfg, base)
    except ConfigError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    if summary["failed"]:
        print(f"sweep: {summary['failed']} cell(s) failed (state/ and logs/ in {summary['out']}); "
              "re-run the same command to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
