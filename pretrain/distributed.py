"""Process-group setup for torchrun, Slurm (srun) and plain single-process runs.

Only this module reads launcher variables. Precedence:

1. torchrun / torch.distributed.launch: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
   ``MASTER_PORT``;
2. Slurm, one task per process (``srun python pretrain/train.py``): ``SLURM_PROCID``,
   ``SLURM_NTASKS``, ``SLURM_LOCALID``; ``MASTER_ADDR`` defaults to the first host of
   ``SLURM_JOB_NODELIST`` (expanded with ``scontrol`` when available) and ``MASTER_PORT`` to a
   port derived from ``SLURM_JOB_ID``;
3. neither: a single process, no process group.

The backend is NCCL when the process uses a CUDA device, gloo otherwise.

:func:`start_parent_watchdog` makes a torchrun worker notice that its agent died (SIGKILL, OOM
killer): torchrun starts each worker in a session of its own, so nothing else stops it, and on
gloo the workers would train on as orphans. Plain ``python`` and ``srun`` processes are left
alone (their parent is a shell or slurmstepd, whose exit must not stop a run).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_gather_objects", "any_rank", "barrier", "broadcast_object", "cleanup", "init_distributed",
           "reduce_scalar", "slurm_master_addr", "start_parent_watchdog", "under_torchrun_agent"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    launcher: str = "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _first_slurm_host(nodelist: str) -> str:
    """First host of a Slurm node list (``node[01-04,07],other`` -> ``node01``)."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                             timeout=10, check=True).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    first = re.split(r",(?![^\[]*\])", nodelist)[0]
    m = re.match(r"^([^\[]+)\[([^\]]+)\]", first)
    if not m:
        return first
    head = m.group(2).split(",")[0].split("-")[0]
    return m.group(1) + head


def slurm_master_addr(env: dict | None = None) -> tuple[str, str]:
    env = os.environ if env is None else env
    addr = env.get("MASTER_ADDR") or _first_slurm_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "localhost"))
    port = env.get("MASTER_PORT") or str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)
    return addr, port


def launcher_env(env: dict | None = None) -> tuple[str, int, int, int]:
    """(launcher, rank, world_size, local_rank) from the environment."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return "torchrun", int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return "slurm", int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return "single", 0, 1, 0


def init_distributed(device: str = "auto", timeout_s: int = 1800) -> DistInfo:
    """Initialise the process group (if launched with several processes) and pick the device.

    ``device``: ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``.
    """
    from datetime import timedelta

    launcher, rank, world, local = launcher_env()
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible")
    if use_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    if world == 1:
        return DistInfo(rank, world, local, dev, None, launcher)
    if launcher == "slurm":
        addr, port = slurm_master_addr()
        os.environ.setdefault("MASTER_ADDR", addr)
        os.environ.setdefault("MASTER_PORT", port)
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if use_cuda else {}
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s), **kwargs)
    return DistInfo(rank, world, local, dev, backend, launcher)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def reduce_scalar(value: float, info: DistInfo, op: str = "mean") -> float:
    """Reduce a Python number over ranks: ``"mean"``, ``"sum"``, ``"max"`` or ``"min"``."""
    if not info.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device)
    ops = {"mean": dist.ReduceOp.SUM, "sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    if op not in ops:
        raise ValueError(f"unknown reduction {op!r}")
    dist.all_reduce(t, op=ops[op])
    return float(t.item() / (info.world_size if op == "mean" else 1))


def any_rank(flags: list[bool], info: DistInfo) -> list[bool]:
    """Element-wise OR of boolean flags over ranks (one all-reduce)."""
    if not info.distributed:
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(x) for x in t.tolist()]


def all_gather_objects(obj, info: DistInfo) -> list:
    """Picklable object of every rank, in rank order."""
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo, src: int = 0):
    """``obj`` of rank ``src`` on every rank (picklable; what other ranks pass is ignored)."""
    if not info.distributed:
        return obj
    box = [obj if info.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def under_torchrun_agent(env: dict | None = None) -> bool:
    """Whether this process is a worker started by torchrun's elastic agent."""
    env = os.environ if env is None else env
    return "TORCHELASTIC_RUN_ID" in env and "RANK" in env


_WATCHED_PARENT: list = [None]


def parent_gone() -> bool:
    """True when :func:`start_parent_watchdog` watches a parent and that parent is gone (the
    ranks of one node share torchrun's agent, so a rank whose own watchdog has not fired yet
    still sees why another rank stopped)."""
    return _WATCHED_PARENT[0] is not None and os.getppid() != _WATCHED_PARENT[0]


def start_parent_watchdog(on_orphan: Callable[[], None] | None = None, exit_after_s: float = 60.0,
                          poll_s: float = 0.5, parent: int | None = None) -> threading.Thread:
    """Watch the parent process (torchrun's agent) from a daemon thread.

    When the parent is gone (``os.getppid()`` changes: the orphan was adopted by init or a
    subreaper), ``on_orphan()`` is called once (default: send SIGTERM to this process, which the
    training loop turns into "finish the step, checkpoint, exit"); if the process still runs
    ``exit_after_s`` seconds later (stuck in a collective with a peer that already left), it exits
    at once with status 1. ``parent``: the PID to watch (default: the current parent).
    """
    parent = os.getppid() if parent is None else parent
    _WATCHED_PARENT[0] = parent
    if on_orphan is None:
        on_orphan = lambda: os.kill(os.getpid(), signal.SIGTERM)  # noqa: E731

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        print(f"[pid {os.getpid()}] the launcher (PID {parent}) is gone: stopping after the current step; "
              f"exiting hard in {exit_after_s:g} s if still running", file=sys.stderr, flush=True)
        on_orphan()
        time.sleep(exit_after_s)
        print(f"[pid {os.getpid()}] the launcher (PID {parent}) is gone and the worker did not stop within "
              f"{exit_after_s:g} s: exiting", file=sys.stderr, flush=True)
        os._exit(1)

    t = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    t.start()
    return t
