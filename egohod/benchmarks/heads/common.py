"""What every head run shares: its config, its output folder, seeds, checkpoints and results.

* :func:`compose_config`: ``configs/head/<task>.yaml`` composed by :func:`egohod.config.compose`
  on the task's structured schema, plus the ``key=value`` overrides of the command line; the
  head's node is checked against the registered head's ``Options``. Errors are
  :class:`HeadConfigError` (an :class:`egohod.config.ConfigError`).
* :class:`HeadRun`: the output folder a run owns (``FolderLock``), ``config.json`` (a folder
  holds one configuration: a run with other settings is refused, naming the keys), resumable
  checkpoints written through :mod:`egohod.models.checkpoint_io`, and the results JSON +
  markdown table (``<name>.json`` / ``<name>.md``, as ``egohod eval`` writes them).
* :func:`features_provenance`: which encoder and weights made a feature folder (from
  ``egohod extract``'s ``index.json`` / ``settings.json``), so results of random-weight
  features say RANDOM WEIGHTS.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any, Iterable, Mapping

from ...config import ConfigError
from ...fileio import FolderLock, atomic_write_json, atomic_write_text

__all__ = ["HeadConfigError", "HeadDataError", "HeadRunError", "HeadRun", "compose_config",
           "features_provenance", "seed_everything", "CONFIG_FILE"]

CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "checkpoints/last.pt"  # a resumable task run's newest state (NLQ, MQ)


class HeadConfigError(ConfigError):
    """A head command's settings that cannot work; the message says what to change."""


class HeadDataError(ValueError):
    """Annotation or feature files that do not fit together; the message names the file."""


class HeadRunError(RuntimeError):
    """An output folder that belongs to another configuration."""


# ----------------------------------------------------------------------------- config

def compose_config(task: str, schema: type, argv: Iterable[str], *, select: Mapping[str, str] = (),
                   renamed: Mapping[str, str] = {}) -> Any:
    """``configs/head/<task>.yaml`` (whose defaults list starts with ``<task>_schema``) composed
    through :func:`egohod.config.compose` with ``argv`` (``key=value``), returned as an instance
    of the dataclass ``schema``.

    ``select`` maps a short option to the Hydra group it picks, e.g. ``{"head":
    "segmentation@head"}`` turns ``head=asformer`` into ``segmentation@head=asformer``. A field
    ``head`` holding ``{name: ..., ...}`` is checked against that head's ``Options``. ``renamed``
    (old key -> new) keeps old setting names working, with a FutureWarning.
    """
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ...config import ConfigError, compose, rename_arguments
    from . import head_options

    argv = rename_arguments(list(argv), renamed, f"egohod head {task}")
    overrides = []
    for a in argv:
        key, eq, value = a.partition("=")
        if not eq:
            raise HeadConfigError(f"arguments are key=value; got {a!r}")
        overrides.append(f"{dict(select).get(key, key)}={value}")
    ConfigStore.instance().store(name=f"{task}_schema", node=schema)
    known = ", ".join(f.name for f in dataclasses.fields(schema))
    try:
        out = OmegaConf.to_object(compose("head", task, overrides, command=f"egohod head {task}"))
    except (ConfigError, OmegaConfBaseException) as e:
        raise HeadConfigError(f"{e}\nknown keys: {known}" + _head_keys_hint(task, argv)) from None
    head = getattr(out, "head", None)
    if isinstance(head, dict):
        try:
            out.head = {"name": head.get("name"),
                        **dataclasses.asdict(head_options(str(head.get("name")), head, task=task))}
        except (KeyError, ValueError, TypeError) as e:
            raise HeadConfigError(str(e).strip('"')) from None
    return out


def _head_keys_hint(task: str, argv: Iterable[str]) -> str:
    """The settings of the head named on the command line (``head=...``), for an error message."""
    from . import HEADS, get_head_class

    argv = list(argv)
    name = next((a.partition("=")[2] for a in argv if a.startswith("head=")), None)
    if not any(a.startswith("head.") for a in argv) or name is None or name not in HEADS:
        return ""
    try:
        fields = [f.name for f in dataclasses.fields(get_head_class(name, task).Options)]
    except KeyError:
        return ""
    return f"\nhead.<key> settings of head={name}: {', '.join(fields)}"


# ----------------------------------------------------------------------------- seeds and provenance

def read_annotation_json(path: str | Path, what: str) -> Any:
    """An official annotation file (``what``: e.g. "NLQ annotation") as parsed JSON; a missing or
    malformed file is a :class:`HeadDataError` naming it."""
    from ..readers import read_json

    return read_json(path, what, error=HeadDataError)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and every CUDA device)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def features_provenance(features: str | Path) -> dict:
    """``{"encoder", "weights", "random_weights", "source"}`` of a feature folder, read from
    ``egohod extract``'s ``index.json`` or ``settings.json``; features from elsewhere give
    ``encoder: "unknown"`` and ``random_weights: False``."""
    root = Path(features)
    for name in ("index.json", "settings.json"):
        p = root / name
        if p.is_file():
            try:
                info = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise HeadDataError(f"{p} is unreadable ({type(e).__name__}: {e})") from None
            weights = str(info.get("weights", "unknown"))
            return {"encoder": info.get("encoder", "unknown"), "weights": weights,
                    "random_weights": bool(info.get("random_weights", weights.startswith("random"))),
                    "source": str(p)}
    return {"encoder": "unknown", "weights": "unknown", "random_weights": False, "source": None}


# ----------------------------------------------------------------------------- the run folder

class HeadRun:
    """The output folder of one head run, held for the run's lifetime::

        with HeadRun(out, config=asdict(cfg), what="egohod head segmentation",
                     transport=("device", "progress")) as run:
            state = run.load_checkpoint("fold1/last.pt")       # None on a fresh start
            run.save_checkpoint("fold1/last.pt", model, meta)  # atomic, self-describing
            run.write_results("segmentation", record, rows)

    ``config`` is saved as ``config.json`` on the first run; a later run in the same folder must
    have the same settings except the ``transport`` keys (device, progress bars...), otherwise
    :class:`HeadRunError` names the differing keys. ``overwrite=True`` drops the saved config,
    checkpoints and results first (asked for explicitly, never silently).
    """

    def __init__(self, out: str | Path, config: Mapping[str, Any], *, what: str = "head run",
                 transport: Iterable[str] = (), overwrite: bool = False, renamed: Mapping[str, str] = {}):
        self.out = Path(out)
        self.renamed = dict(renamed)  # settings renamed since a folder's config.json may have been written
        self.config = json.loads(json.dumps(dict(config)))  # plain JSON values, as saved
        self.transport = set(transport)
        self.overwrite = overwrite
        self._lock = FolderLock(self.out, what=what)

    def __enter__(self) -> "HeadRun":
        self._lock.acquire()
        try:
            self._claim()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()

    def _claim(self) -> None:
        path = self.out / CONFIG_FILE
        if self.overwrite:
            self._clear()
        elif path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise HeadRunError(f"{path} is unreadable ({type(e).__name__}: {e}); choose another out= folder "
                                   "or pass overwrite=true") from None
            from ...config import upgrade_recorded

            was, now = _flatten(upgrade_recorded(old, self.renamed)), _flatten(self.config)
            diff = sorted(k for k in set(was) | set(now)
                          if k.split(".")[0] not in self.transport and was.get(k) != now.get(k))
            if diff:
                lines = "\n".join(f"  {k}: folder has {was.get(k)!r}, this run has {now.get(k)!r}" for k in diff)
                raise HeadRunError(f"{self.out} holds a run with other settings ({path}):\n{lines}\n"
                                   "choose another out= folder, run with the folder's settings (it resumes), "
                                   "or pass overwrite=true to start it again")
        atomic_write_json(path, self.config)

    def _clear(self) -> None:
        import shutil

        for p in self.out.iterdir():
            if p.name == FolderLock.name:
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def path(self, rel: str | Path) -> Path:
        return self.out / rel

    # -- checkpoints
    def save_checkpoint(self, rel: str | Path, model, meta: Mapping[str, Any]) -> Path:
        """``model``'s weights plus ``meta`` (epoch, optimizer and RNG state...) and the run's
        config, written atomically through :func:`egohod.models.checkpoint_io.write_checkpoint`."""
        from ...models.checkpoint_io import write_checkpoint

        return write_checkpoint(self.out / rel, model.state_dict(), {**meta, "config": self.config})

    def load_checkpoint(self, rel: str | Path) -> tuple[dict, dict] | None:
        """``(state_dict, meta)`` of a checkpoint this run wrote, or ``None`` if there is none.
        Read safely (no arbitrary unpickling)."""
        from ...models.checkpoint_io import read_checkpoint_with_meta

        p = self.out / rel
        if not p.is_file():
            return None
        return read_checkpoint_with_meta(p)

    def save_training(self, model, optimizer, scheduler, epoch: int, losses: list[float], **extra) -> Path:
        """:data:`LAST_CHECKPOINT` with what resuming needs: weights, optimizer and scheduler state,
        the torch (and CUDA) RNG, the epochs done and their losses, plus ``extra`` (head, sizes...)."""
        import torch

        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return self.save_checkpoint(LAST_CHECKPOINT, model, {
            "epoch": int(epoch), "losses": list(losses), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng, **extra})

    def resume_training(self, model, optimizer, scheduler) -> tuple[int, list[float], dict]:
        """Restore what :meth:`save_training` wrote, if anything: ``(epochs done, their losses,
        meta)`` (``(0, [], {})`` for a new run)."""
        import torch

        saved = self.load_checkpoint(LAST_CHECKPOINT)
        if saved is None:
            return 0, [], {}
        state, meta = saved
        model.load_state_dict(state)
        optimizer.load_state_dict(meta["optimizer"])
        scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(meta["rng"]["torch"])
        if "cuda" in meta["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(meta["rng"]["cuda"])
        return int(meta["epoch"]), list(meta["losses"]), meta

    # -- results
    def write_results(self, name: str, record: Mapping[str, Any], rows: list[dict],
                      columns: list[str] | None = None) -> tuple[Path, Path]:
        """``<out>/<name>.json`` (``record``) and ``<out>/<name>.md`` (``rows`` as a table)."""
        from ..results import json_safe, markdown_table

        js = atomic_write_text(self.out / f"{name}.json", json.dumps(json_safe(dict(record)), indent=2) + "\n")
        md = atomic_write_text(self.out / f"{name}.md", markdown_table(rows, columns))
        return js, md


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"head": {"epochs": 2}}`` -> ``{"head.epochs": 2}`` (so a refusal names the nested key)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
