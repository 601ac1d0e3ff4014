"""Choosing the torch device from a ``device=`` setting, the same way in every command.

``auto`` is the first CUDA device when one is visible, else the CPU; ``cpu``, ``cuda`` and
``cuda:N`` are taken as given, and asking for CUDA where none is visible is an error that says
what to set instead. Nothing is chosen at import time.
"""
from __future__ import annotations

import torch


def resolve_device(name: str, option: str = "device") -> torch.device:
    """The ``torch.device`` for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``); ``option`` is how
    the caller's configuration spells the setting, for the error message."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{option}={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option}={name!r} but CUDA is not available; use {option}=cpu or {option}=auto")
    return dev
