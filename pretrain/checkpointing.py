"""Self-describing, atomic training checkpoints.

Layout under ``{out_dir}/checkpoints/``::

    <step>/model.pt         {'state_dict': {'module.<key>': tensor}, 'step', 'epoch', 'model_name',
                             'input_spec', 'model_config', 'config', 'format'}
                            -- the official EgoVideo layout: egohod.create_model(name,
                            checkpoint=".../model.pt") and egohod.load_encoder read it directly
    <step>/train_state.pt   optimizer, GradScaler, every rank's RNG states, data position,
                            bad-sample counts, world size / batch geometry
    <step>/config.yaml      the resolved run configuration
    last -> <step>          symlink to the newest complete checkpoint

A checkpoint is written into a hidden temporary folder that is renamed into place when complete,
and ``last`` is replaced atomically afterwards, so a run killed at any moment leaves either the
previous or the new checkpoint, never a partial one.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

__all__ = ["CHECKPOINT_FORMAT", "capture_rng", "find_last", "load_train_state", "restore_rng", "save_checkpoint"]

CHECKPOINT_FORMAT = "egohod-pretrain-v1"


def capture_rng() -> dict:
    """This process's RNG states (Python, NumPy global, torch CPU and CUDA), weights-only safe."""
    version, pystate, gauss = random.getstate()
    st = np.random.get_state()
    out = {
        "python": {"version": int(version), "state": torch.tensor(pystate, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": st[0], "keys": torch.from_numpy(st[1].astype(np.int64)), "pos": int(st[2]),
                  "has_gauss": int(st[3]), "cached": float(st[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_symlink(target: str, link: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def save_checkpoint(out_dir: str | os.PathLike, step: int, model_file: dict, train_state: dict, config_yaml: str) -> Path:
    """Write ``checkpoints/<step>/`` atomically and point ``last`` at it (call on rank 0 only)."""
    root = Path(out_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / str(int(step))
    tmp = root / f".{int(step)}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(model_file, tmp / "model.pt")
    torch.save(train_state, tmp / "train_state.pt")
    (tmp / "config.yaml").write_text(config_yaml)
    if final.exists():  # re-saving a step (e.g. after a resume): replace it
        old = root / f".{int(step)}.old{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _atomic_symlink(final.name, root / "last")
    return final


def find_last(out_dir: str | os.PathLike) -> Path | None:
    """The folder ``last`` points to, or the highest complete ``<step>/``; None if there is none."""
    root = Path(out_dir) / "checkpoints"
    complete = lambda p: (p / "model.pt").is_file() and (p / "train_state.pt").is_file()  # noqa: E731
    last = root / "last"
    if last.is_symlink() or last.is_dir():
        target = last.resolve()
        if complete(target):
            return target
    steps = sorted((p for p in root.glob("[0-9]*") if p.is_dir() and p.name.isdigit() and complete(p)),
                   key=lambda p: int(p.name)) if root.is_dir() else []
    return steps[-1] if steps else None


def load_train_state(ckpt_dir: Path) -> tuple[dict, dict]:
    """(model file dict, train state dict) of a checkpoint folder, read by :func:`egohod.safe_load.load_torch`."""
    from egohod.safe_load import load_torch

    model_file = load_torch(ckpt_dir / "model.pt", what="pretraining checkpoint")
    state = load_torch(ckpt_dir / "train_state.pt", what="pretraining train state")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{ckpt_dir}/train_state.pt has format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    return model_file, state
