"""Self-describing, atomic training checkpoints.

Layout under ``{out}/checkpoints/``::

    <step>/model.pt         {'state_dict': {'module.<key>': tensor}, 'step', 'epoch', 'model_name',
                             'input_spec', 'model_config', 'config', 'format'}
                            -- the official EgoVideo layout plus what the file is, built by
                            egohod.models.checkpoint_io.checkpoint_payload (the one checkpoint
                            format module); egohod.create_model(checkpoint=".../model.pt") and
                            egohod.load_encoder(checkpoint=...) read it directly, without a name
    <step>/train_state.pt   optimizer, GradScaler, every rank's RNG states, data position,
                            bad-sample counts, world size / batch geometry
    <step>/config.yaml      the resolved run configuration
    last -> <step>          symlink to the newest complete checkpoint

A checkpoint is written into a hidden temporary folder that is renamed into place when complete,
and ``last`` is replaced atomically afterwards, so a run killed at any moment leaves either the
previous or the new checkpoint, never a partial one (files and folders are fsynced before the
renames). ``keep_last`` retention (:func:`prune_checkpoints`) never deletes what ``last`` points to;
:func:`load_latest` falls back to the newest checkpoint that loads.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

__all__ = ["CHECKPOINT_FORMAT", "capture_rng", "checkpoint_steps", "find_last", "load_latest", "load_train_state",
           "prune_checkpoints", "remove_partial", "restore_rng", "save_checkpoint"]

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


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save_synced(obj, path: Path) -> None:
    """``torch.save`` + fsync: the bytes are on disk before the folder holding them is renamed into place."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _atomic_symlink(target: str, link: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def save_checkpoint(out: str | os.PathLike, step: int, model_file: dict, train_state: dict, config_yaml: str,
                    keep_last: int = 0) -> Path:
    """Write ``checkpoints/<step>/`` atomically, point ``last`` at it, then keep the ``keep_last``
    newest checkpoints up to ``step`` (0: keep all). Call on rank 0 only."""
    from egohod.fileio import atomic_write_text

    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / str(int(step))
    tmp = root / f".{int(step)}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _save_synced(model_file, tmp / "model.pt")
    _save_synced(train_state, tmp / "train_state.pt")
    atomic_write_text(tmp / "config.yaml", config_yaml)
    _fsync_dir(tmp)
    if final.exists():  # re-saving a step (e.g. after a resume): replace it
        old = root / f".{int(step)}.old{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    _atomic_symlink(final.name, root / "last")
    prune_checkpoints(out, keep_last, upto=int(step))
    return final


def _complete(p: Path) -> bool:
    return (p / "model.pt").is_file() and (p / "train_state.pt").is_file()


def checkpoint_steps(out: str | os.PathLike) -> list[int]:
    """Steps of the complete ``checkpoints/<step>/`` folders, ascending."""
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir() and _complete(p))


def _last_target(root: Path) -> Path | None:
    last = root / "last"
    if last.is_symlink() or last.is_dir():
        return last.resolve()
    return None


def prune_checkpoints(out: str | os.PathLike, keep_last: int, upto: int) -> list[int]:
    """Delete all but the ``keep_last`` newest checkpoints with step <= ``upto`` (0: keep all).

    The checkpoint ``last`` points to is never deleted, and folders past ``upto`` (left by an
    abandoned run that was resumed from an earlier checkpoint) are left alone: the resumed run
    replaces them when it saves those steps again. Returns the deleted steps.
    """
    if keep_last <= 0:
        return []
    root = Path(out) / "checkpoints"
    protected = _last_target(root)
    older = [s for s in checkpoint_steps(out) if s <= upto]
    deleted = []
    for s in older[:-keep_last]:
        p = root / str(s)
        if protected is not None and p.resolve() == protected:
            continue
        shutil.rmtree(p)
        deleted.append(s)
    return deleted


def remove_partial(out: str | os.PathLike) -> list[str]:
    """Remove the hidden temporary folders a killed writer left in ``checkpoints/`` (call only while
    holding the run folder's lock: a live writer's folder looks the same). Returns their names."""
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return []
    gone = []
    for p in root.glob(".*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        gone.append(p.name)
    return gone


def find_last(out: str | os.PathLike) -> Path | None:
    """The folder ``last`` points to, or the highest complete ``<step>/``; None if there is none."""
    root = Path(out) / "checkpoints"
    target = _last_target(root)
    if target is not None and _complete(target):
        return target
    steps = checkpoint_steps(out)
    return root / str(steps[-1]) if steps else None


def load_latest(out: str | os.PathLike, warn=None) -> tuple[Path, dict, dict]:
    """``(folder, model file, train state)`` of the newest checkpoint that loads.

    Tries the folder ``last`` points to, then every complete ``<step>/`` from the highest down. A
    checkpoint that cannot be read (truncated, corrupt, wrong format) is skipped with a warning
    naming the file (``warn``: a callable taking the message; default: print to stderr). A file
    that :mod:`egohod.safe_load` refuses as unsafe stops the search: that is not damage but a file
    that wants to run code. Raises ``FileNotFoundError`` when there is no complete checkpoint and
    ``RuntimeError`` listing every failure when none loads.
    """
    import sys

    from egohod.safe_load import UnsafeFileError

    warn = warn or (lambda m: print(m, file=sys.stderr, flush=True))
    root = Path(out) / "checkpoints"
    candidates = [root / str(s) for s in reversed(checkpoint_steps(out))]
    target = _last_target(root)
    if target is not None and _complete(target):
        candidates = [target] + [c for c in candidates if c.resolve() != target]
    if not candidates:
        raise FileNotFoundError(f"{root} has no complete checkpoint (<step>/model.pt + train_state.pt)")
    failures = []
    for ckpt in candidates:
        try:
            model_file, state = load_train_state(ckpt)
        except UnsafeFileError:
            raise
        except Exception as e:  # noqa: BLE001 - any damage: try the previous checkpoint
            failures.append(f"{ckpt}: {type(e).__name__}: {e}")
            warn(f"WARNING: cannot load checkpoint {ckpt} ({type(e).__name__}: {e}); trying the previous one")
            continue
        if failures:
            warn(f"WARNING: resuming from {ckpt} (step {state.get('position', {}).get('step', '?')}) instead of "
                 f"the newer checkpoint(s) that failed to load")
        return ckpt, model_file, state
    raise RuntimeError("no checkpoint in " + str(root) + " loads:\n  " + "\n  ".join(failures))


def load_train_state(ckpt_dir: Path) -> tuple[dict, dict]:
    """(model file dict, train state dict) of a checkpoint folder, read by :func:`egohod.safe_load.load_torch`."""
    from egohod.safe_load import load_torch

    model_file = load_torch(ckpt_dir / "model.pt", what="pretraining checkpoint")
    state = load_torch(ckpt_dir / "train_state.pt", what="pretraining train state")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{ckpt_dir}/train_state.pt has format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    return model_file, state
