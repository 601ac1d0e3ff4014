"""Run logging on rank 0: a JSONL file, an optional wandb run (offline by default) and a tqdm bar.

``metrics.jsonl`` starts with a ``{"event": "header"}`` record stating how every metric is
reduced over ranks; then one ``{"event": "train", "step": ...}`` record per logged step, and
``{"event": "val"}`` / ``{"event": "resume"}`` / ``{"event": "bad_sample"}`` records. Each record
is appended with :func:`egohod.fileio.append_jsonl` (flushed and fsynced). The file never holds a
``train`` or ``val`` step twice: on resume from step ``s``, :func:`trim_jsonl` first drops what
the interrupted run logged past ``s`` (those steps are trained again), and the logger refuses to
write a step it already holds.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from egohod.fileio import append_jsonl, atomic_write_text

__all__ = ["METRIC_REDUCTIONS", "RunLogger", "read_metrics", "trim_jsonl"]

METRIC_REDUCTIONS = {
    "loss": "global-batch InfoNCE, identical on all ranks (mean over micro-batches)",
    "acc_v2t": "top-1 in-batch video->text over the global batch",
    "acc_t2v": "top-1 in-batch text->video over the global batch",
    "lr": "identical on all ranks",
    "grad_norm": "global norm after the cross-rank reduction, before clipping",
    "clips_per_s": "sum over ranks (global clips / wall time of the step, incl. data wait)",
    "data_wait_s": "max over ranks of the time spent waiting for the loader this step",
    "step_time_s": "max over ranks of the step wall time",
    "bad_samples": "sum over ranks, cumulative since the start of training",
    "bad_fraction": "bad_samples / attempted samples, all ranks",
}


class RunLogger:
    def __init__(self, out: str | os.PathLike, enabled: bool, config: dict, wandb_cfg=None, progress: bool = True,
                 total_steps: int = 0, start_step: int = 0, desc: str = "pretrain", reductions: dict | None = None):
        self.enabled = enabled
        self.path = Path(out) / "metrics.jsonl"
        self.last_train: dict = {}
        self.last_val: dict = {}
        self._rates: list[float] = []
        self._waits: list[float] = []
        self._wandb = None
        self._bar = None
        self.logged: dict[str, set[int]] = {"train": set(), "val": set()}  # steps already in the file, per event
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        if not fresh:
            for r in _records(self.path):
                if r.get("event") in self.logged and "step" in r:
                    self.logged[r["event"]].add(int(r["step"]))
        if fresh:
            self.write({"event": "header", "reductions": METRIC_REDUCTIONS if reductions is None else reductions,
                        "config": config})
        if wandb_cfg is not None and wandb_cfg.wandb:
            import wandb

            self._wandb = wandb.init(project=wandb_cfg.wandb_project, name=wandb_cfg.run_name, config=config,
                                     dir=str(self.path.parent), mode=wandb_cfg.wandb_mode, resume="allow",
                                     id=_run_id(self.path.parent))
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc=desc, unit="step", dynamic_ncols=True)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        event, step = record.get("event"), record.get("step")
        if event in self.logged and step is not None:
            if int(step) in self.logged[event]:
                print(f"WARNING: {self.path} already holds a {event} record for step {step}; not written again",
                      file=sys.stderr, flush=True)
                return
            self.logged[event].add(int(step))
        record = {"time": round(time.time(), 3), **{k: _finite(v) for k, v in record.items()}}
        json.dumps(record, allow_nan=False)  # strict JSON or nothing
        append_jsonl(self.path, record)

    def log_step(self, step: int, metrics: dict, advance: int = 1) -> None:
        if not self.enabled:
            return
        self.write({"event": "train", "step": step, **metrics})
        self.last_train = {"step": step, **metrics}
        self._rates.append(metrics["clips_per_s"])
        self._waits.append(metrics["data_wait_s"] / max(1e-9, metrics["step_time_s"]))
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": v for k, v in metrics.items()}, step=step)
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{metrics['loss']:.4f}", clips_s=f"{metrics['clips_per_s']:.1f}",
                                  wait=f"{metrics['data_wait_s']:.2f}s", refresh=False)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def log_val(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        self.write({"event": "val", "step": step, **metrics})
        self.last_val = {"step": step, **metrics}
        if self._wandb is not None:
            self._wandb.log({f"val/{k}": v for k, v in metrics.items()}, step=step)

    def summary(self, checkpoint: str | None) -> str:
        """A short table of the run (rank 0)."""
        t, v = self.last_train, self.last_val
        rows = [("steps", t.get("step", 0)), ("epoch", t.get("epoch", "-")),
                ("final loss", f"{t['loss']:.4f}" if "loss" in t else "-"),
                ("clips/s (median of logged steps)", f"{sorted(self._rates)[len(self._rates) // 2]:.1f}" if self._rates else "-"),
                ("data wait (median share of step)", f"{100 * sorted(self._waits)[len(self._waits) // 2]:.0f}%" if self._waits else "-"),
                ("bad samples (all ranks)", t.get("bad_samples", 0))]
        rows += [(f"val {k}", f"{x:.2f}" if isinstance(x, float) else x) for k, x in v.items() if k not in ("step", "epoch")]
        rows += [("checkpoint", checkpoint or "-"), ("metrics", str(self.path))]
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{w}}  {x}" for k, x in rows)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        if self._wandb is not None:
            self._wandb.finish()


def _finite(v):
    """Strict JSON: non-finite floats (an fp16 step skipped by the scaler) become null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _run_id(out: Path) -> str:
    f = out / "wandb_run_id"
    if f.exists():
        return f.read_text().strip()
    import uuid

    rid = uuid.uuid4().hex[:12]
    atomic_write_text(f, rid)
    return rid


def _records(path: Path) -> list[dict]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut off by a crash (only the last one can be)
                continue
    return out


def trim_jsonl(path: str | os.PathLike, step: int) -> int:
    """Drop the records of a JSONL log that belong past ``step`` (a resume from ``step`` redoes them):
    every record with ``"step" > step``, and a line cut off by a crash. Records without a step
    (header, start) stay. Rewritten atomically; returns how many records were dropped."""
    path = Path(path)
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    keep, dropped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(r, dict) and r.get("step") is not None and isinstance(r["step"], (int, float)) and r["step"] > step:
            dropped += 1
            continue
        keep.append(line)
    if dropped:
        atomic_write_text(path, "".join(x + "\n" for x in keep))
    return dropped


def read_metrics(path: str | os.PathLike, event: str = "train") -> dict[int, dict]:
    """``{step: record}`` of one event kind, the last record per step winning."""
    return {int(r["step"]): r for r in _records(Path(path)) if r.get("event") == event}
