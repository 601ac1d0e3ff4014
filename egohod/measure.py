"""What a measurement records about the machine it ran on, and how its JSON record leaves the process.

Every benchmark in ``bench/`` (and any result that wants to say where it was measured) describes
the machine with :func:`machine` and ends with :func:`emit`::

    record = {"benchmark": "mir_scorer", ..., "machine": machine(extra={"numpy": np.__version__})}
    emit(record, out=args.out)

:func:`machine` returns the same keys on every machine, so records from different benches and
machines can be compared field by field:

* ``platform``, ``python``;
* ``cpu``: the CPU model (``model name`` in ``/proc/cpuinfo``, else ``platform.processor()``,
  else ``platform.machine()``); ``cpu_count``: the cores this process may run on (its CPU
  affinity, which ``taskset``, cgroups and Slurm narrow), ``cpu_count_total``: the cores the
  machine has (``os.cpu_count()``); ``load_average``: 1, 5 and 15 minutes, or None where the
  system has none (a shared machine's load changes what a timing means);
* ``torch``, ``torch_threads``: torch's version and its intra-op thread count when torch is
  already imported, else None. :func:`machine` never imports torch itself: a bench that computes
  with torch has imported it by the time it describes the machine, and one that does not (numpy
  only, like ``bench/mir_scorer.py``) neither pays for the import nor depends on torch's threads;
* ``device``: the device the numbers were measured on, as a string (``None`` given: ``"cpu"``,
  the case of numpy, PyAV and MuJoCo benches);
* ``gpu``, ``cuda``, ``gpu_memory_gib``: the GPU's name, the CUDA version torch was built with and
  the GPU's memory for a CUDA device; None for any other device (the keys are always there).

``extra`` adds a bench's own keys (library versions, environment variables, the GL renderer);
they win over the standard ones of the same name.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any

from .fileio import atomic_write_text

__all__ = ["cpu_model", "emit", "machine", "usable_cores"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity), else all the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # no load average on this system
        return None


def _gpu(device: Any) -> dict:
    """Name, CUDA version and memory of ``device`` when it is a CUDA device (torch is then loaded:
    a CUDA device only comes from torch)."""
    import torch

    dev = torch.device(device)
    return {"gpu": torch.cuda.get_device_name(dev), "cuda": torch.version.cuda,
            "gpu_memory_gib": round(torch.cuda.get_device_properties(dev).total_memory / 2 ** 30, 1)}


def machine(device: Any = None, extra: dict | None = None) -> dict:
    """One description of this machine with the same keys everywhere (see the module docstring).

    ``device``: a ``torch.device`` or a device string (``"cpu"``, ``"cuda:0"``); None means the CPU.
    ``extra``: the caller's own keys, merged last."""
    torch = sys.modules.get("torch")
    device = "cpu" if device is None else str(device)
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": usable_cores(),
        "cpu_count_total": os.cpu_count(),
        "load_average": _load_average(),
        "torch": getattr(torch, "__version__", None),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "device": device,
        "gpu": None, "cuda": None, "gpu_memory_gib": None,
    }
    if device.split(":")[0] == "cuda":
        info.update(_gpu(device))
    if extra:
        info.update(extra)
    return info


def emit(record: dict, out: str | os.PathLike | None = None, indent: int | None = 2) -> str:
    """Print ``record`` as JSON on stdout and, when ``out`` is given, write the same text there
    atomically (a reader never sees half a record). Returns the text (without the newline)."""
    text = json.dumps(record, indent=indent)
    print(text, flush=True)
    if out:
        atomic_write_text(out, text + "\n")
    return text
