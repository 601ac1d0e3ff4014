"""The behaviour-cloning update and self-describing policy checkpoints.

:func:`train_step` is one optimiser update on one batch; the loop in ``robot/run_bc.py`` only
samples, steps, logs and evaluates. A checkpoint (``checkpoints/<step>/policy.pt``, with a
``checkpoints/last`` symlink moved atomically) holds everything needed to rebuild and
evaluate the policy without the training config files: head name, sizes and options, weights,
input normalisation statistics, encoder identity, env and demo settings, the resolved config,
the step, and optimiser + RNG states for resuming.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .bc_data import BCBatch

CHECKPOINT_FORMAT = "egohod-bc-policy/1"


def train_step(policy, optimizer: torch.optim.Optimizer, batch: BCBatch, grad_clip: float | None = None) -> float:
    """One update: loss of the head on the batch, backward, (clip), step. Returns the loss."""
    policy.train()
    loss = policy.loss(batch.features, batch.proprio, batch.actions)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite BC loss {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


def rng_state(generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "sampler": generator.get_state()}


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    generator.set_state(state["sampler"])


def save_checkpoint(run_dir: str | Path, step: int, payload: dict[str, Any]) -> Path:
    """Write ``checkpoints/<step>/policy.pt`` (:func:`egohod.models.checkpoint_io.write_checkpoint`:
    the policy's ``state_dict`` plus everything else in ``payload`` as the file's meta) and point
    ``checkpoints/last`` at it."""
    from egohod.models.checkpoint_io import write_checkpoint

    ckpt_root = Path(run_dir) / "checkpoints"
    d = ckpt_root / f"{step:07d}"
    d.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    path = write_checkpoint(d / "policy.pt", payload["state_dict"], {"format": CHECKPOINT_FORMAT, "step": step, **meta})
    link_tmp = ckpt_root / f".last.{os.getpid()}.tmp"
    link_tmp.unlink(missing_ok=True)
    os.symlink(d.name, link_tmp)
    os.replace(link_tmp, ckpt_root / "last")
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """``policy.pt`` from a run dir, a ``checkpoints`` dir, ``checkpoints/last``, a step dir or the file."""
    p = Path(path)
    for cand in (p, p / "policy.pt", p / "last" / "policy.pt", p / "checkpoints" / "last" / "policy.pt"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no policy checkpoint at {path!s} (expected a policy.pt file, a checkpoints/<step> "
                            "directory, checkpoints/last, or a run directory containing checkpoints/last)")


def load_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (or by egohod before it went through
    the checkpoint module: the same entries, unprefixed keys) with
    :func:`egohod.models.checkpoint_io.read_checkpoint_with_meta`: tensors, numpy RNG state and plain
    dicts load without ``trust_pickle``; anything else is refused unless ``trust_pickle=True``.
    Returns the meta entries with ``state_dict`` and ``path`` added."""
    from egohod.models.checkpoint_io import read_checkpoint_with_meta

    p = resolve_checkpoint(path)
    state_dict, meta = read_checkpoint_with_meta(p, trust_pickle=trust_pickle)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{p} is not an egohod BC policy checkpoint (format {CHECKPOINT_FORMAT!r})")
    return {**meta, "state_dict": state_dict, "path": str(p)}


def build_policy_from_checkpoint(ckpt: dict):
    from policies import create_policy

    d = ckpt["policy"]
    policy = create_policy(d["name"], d["feature_dim"], d["proprio_dim"], d["action_dim"], d["options"])
    state = dict(ckpt["state_dict"])
    # checkpoints from before action standardisation: identity statistics (raw actions)
    for key in ("action_mean", "action_std"):
        state.setdefault(key, getattr(policy, key))
    policy.load_state_dict(state)
    policy.eval()
    return policy
