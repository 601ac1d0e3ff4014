"""``results.json`` of a BC run, its success-curve plot, and tables over runs.

``results.json``::

    {"format": "egohod-bc-results/1",
     "encoder": {"name", "weights" ("random:seed=N" | sha256 | "none"), "random_weights", "seed", "checkpoint",
                 "frames", ...},
     "label": "egovideo_tiny (RANDOM WEIGHTS, seed 0)",
     "env": {"task", "camera", ...}, "demos": {"num", "path", "sha256"}, "policy": {...}, "seed": 0,
     "evals": [{"step", "success_rate", "seed0", "episodes": [{"seed", "success", "steps", "success_step",
                "solved_steps"}, ...]}, ...],
     "best": {"step", "success_rate"}, "final": {"step", "success_rate"},
     "best_heldout": {"step", "success_rate", "seeds": [first, last], "checkpoint", "episodes": [...]},
     "train": {"steps", "loss", "seconds"}, "complete": true}

Three numbers per run, because they answer different questions:

- ``best``: the maximum over the periodic evaluations, as R3M reports it (``max_success`` in its
  ``train_loop.py``). The evaluation that picks the checkpoint also scores it, so it is an
  optimistic estimate (the maximum of ~20 noisy 50-episode rates).
- ``final``: the last evaluation (no selection).
- ``best_heldout``: the checkpoint ``best`` names, re-evaluated on episode seeds that no evaluation,
  demo or corpus episode uses (``robot.config.HELDOUT_SEED``: ``[5_000_000, 5_100_000)``), an
  unbiased estimate of the selected policy.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from egohod.fileio import atomic_write_bytes

RESULTS_FORMAT = "egohod-bc-results/1"


class RunResults:
    def __init__(self, header: dict):
        self.data = {"format": RESULTS_FORMAT, **header, "evals": [], "best": None, "final": None,
                     "train": {}, "complete": False}

    @classmethod
    def from_dict(cls, d: dict) -> "RunResults":
        r = cls({})
        r.data = d
        return r

    @property
    def evals(self) -> list[dict]:
        return self.data["evals"]

    def add_eval(self, step: int, result: dict) -> None:
        self.data["evals"] = [e for e in self.evals if e["step"] != step] + [{"step": step, **result}]
        self.data["evals"].sort(key=lambda e: e["step"])
        best = max(self.evals, key=lambda e: (e["success_rate"], -e["step"]))  # earliest of the best
        self.data["best"] = {"step": best["step"], "success_rate": best["success_rate"]}
        last = self.evals[-1]
        self.data["final"] = {"step": last["step"], "success_rate": last["success_rate"]}

    def set_heldout(self, step: int, result: dict, seeds: list[int], checkpoint: str) -> None:
        """The held-out re-evaluation of the checkpoint of ``step`` (must be the ``best`` step)."""
        if self.data.get("best") is None or self.data["best"]["step"] != step:
            raise ValueError(f"best_heldout must re-evaluate the best checkpoint (step "
                             f"{(self.data.get('best') or {}).get('step')}), got step {step}")
        used = {ep["seed"] for e in self.evals for ep in e.get("episodes", [])}
        held = {ep["seed"] for ep in result["episodes"]}
        if used & held:
            raise ValueError(f"held-out seeds {sorted(used & held)[:5]}... were used by the evaluations "
                             "that chose the checkpoint")
        self.data["best_heldout"] = {"step": step, "success_rate": result["success_rate"], "seeds": list(seeds),
                                     "checkpoint": str(checkpoint), "episodes": result["episodes"]}

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(Path(path), json.dumps(self.data, indent=1).encode())


def save_figure(fig, path: str | Path) -> None:
    """Write a matplotlib figure as PNG atomically (through egohod.fileio) and close it."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def style_success_bars(ax, title: str = "") -> None:
    """The axes of a success-rate bar chart (0-105 %, grid, legend, optional title)."""
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)


def plot_success_curve(results: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = results["evals"]
    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=120)
    ax.plot([e["step"] for e in ev], [100 * e["success_rate"] for e in ev], marker="o")
    ax.set_xlabel("training step")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    env = results.get("env", {})
    n = len(ev[-1]["episodes"]) if ev else 0
    ax.set_title(f"{results['label']}\n{env.get('task')} / {env.get('camera')} camera, "
                 f"{results.get('demos', {}).get('num')} demos, seed {results.get('seed')}, {n} episodes",
                 fontsize=9, color="red" if results["encoder"].get("random_weights") else "black")
    save_figure(fig, path)


# --- tables over runs -----------------------------------------------------------------------

def find_results(root: str | Path) -> list[Path]:
    """Every ``results.json`` under ``root`` (symlinked run directories included; the
    ``eval/`` re-evaluations written by eval_bc are not training runs and are skipped)."""
    import os

    found = []
    for d, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(x for x in dirs if x not in ("eval", "wandb", "checkpoints", "videos"))
        if "results.json" in files:
            found.append(Path(d) / "results.json")
    return sorted(found)


def load_results(paths: Iterable[Path]) -> list[dict]:
    out = []
    for p in paths:
        try:
            d = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read {p}: {e}") from e
        if d.get("format") != RESULTS_FORMAT:
            raise ValueError(f"{p} is not a BC results file (format {d.get('format')!r}, expected {RESULTS_FORMAT!r})")
        d["_path"] = str(p)
        out.append(d)
    return out


def weights_kind(encoder: dict) -> str:
    """``random`` (random weights), ``none`` (no vision weights: the privileged ``state`` encoder)
    or ``pretrained`` (a checkpoint)."""
    if encoder.get("random_weights"):
        return "random"
    if encoder.get("weights") in (None, "", "none"):  # what the state encoder records (no vision weights)
        return "none"
    return "pretrained"


_PROTOCOL_ENV = {"egohod": ("kitchen", False), "r3m": ("kitchen_r3m", True)}  # (env family, strict success)


def protocol_label(results: dict) -> str:
    """``egohod`` / ``r3m`` (runs from before presets: ``egohod``), plus whatever of the env family
    and the success rule differs from that preset's, e.g. ``egohod (strict)``."""
    name = results.get("protocol", "egohod")
    env = results.get("env", {})
    family = str(env.get("id", "kitchen/")).split("/", 1)[0]
    strict = bool(env.get("strict_success", False))
    want_family, want_strict = _PROTOCOL_ENV.get(name, (family, strict))
    extra = ([family] if family != want_family else []) + ([("strict" if strict else "task")]
                                                           if strict != want_strict else [])
    return name + (f" ({', '.join(extra)})" if extra else "")


def summary_rows(runs: list[dict]) -> list[dict]:
    """One row per (encoder, weights, task, camera, demos, policy, protocol): seeds, episodes per
    evaluation, and the best / final / best_heldout success in percent (mean and sample std over
    seeds)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if not r.get("evals"):
            continue
        enc = r["encoder"]
        key = (enc["name"], weights_kind(enc), "" if enc.get("random_weights") else (enc.get("weights") or "")[:12],
               r["env"]["task"], r["env"]["camera"], r["demos"]["num"], r.get("policy", {}).get("name", "?"),
               protocol_label(r))
        groups.setdefault(key, []).append(r)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rs = groups[key]
        best = [100 * r["best"]["success_rate"] for r in rs]
        final = [100 * r["final"]["success_rate"] for r in rs]
        held = [100 * r["best_heldout"]["success_rate"] for r in rs if r.get("best_heldout")]
        rows.append({"encoder": key[0], "weights": key[1], "weights_id": key[2], "task": key[3], "camera": key[4],
                     "demos": key[5], "policy": key[6], "protocol": key[7], "seeds": sorted(r.get("seed") for r in rs),
                     "episodes": sorted({len(r["evals"][-1]["episodes"]) for r in rs}),
                     "incomplete": sum(not r.get("complete") for r in rs),
                     "checkpoint": rs[0]["encoder"].get("checkpoint"),
                     "best": _mean(best), "best_std": _std(best), "final": _mean(final), "final_std": _std(final),
                     # over the seeds that carry it (runs from before best_heldout, or with it off, do not)
                     "best_heldout": _mean(held) if held else None, "best_heldout_std": _std(held),
                     "heldout_seeds": len(held)})
    return rows


def _mean(v: list[float]) -> float:
    return sum(v) / len(v)


def _std(v: list[float]) -> float | None:
    """Sample std; None for one value (a single seed has no spread to report)."""
    if len(v) < 2:
        return None
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


_WEIGHTS_LABEL = {"random": "RANDOM WEIGHTS", "none": "privileged state", "pretrained": "pretrained"}


def _pm_heldout(row: dict) -> str:
    if row["best_heldout"] is None:
        return "n/a"
    missing = len(row["seeds"]) - row["heldout_seeds"]
    return _pm(row["best_heldout"], row["best_heldout_std"]) + (f" ({missing} seed(s) without)" if missing else "")


def summary_table(runs: list[dict]) -> str:
    """Markdown table: one row per (encoder, weights, task, camera, demos, policy), success
    mean ± std (percent, sample std; no ± for a single seed) over seeds of the best and the
    final evaluation and of the best checkpoint on held-out seeds (see the module docstring)."""
    lines = ["| encoder | weights | task | camera | demos | policy | protocol | seeds | episodes | best success (%) | "
             "final success (%) | best_heldout success (%) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary_rows(runs):
        weights = _WEIGHTS_LABEL[row["weights"]] + (f" {row['weights_id']}" if row["weights"] == "pretrained" else "")
        note = f" ({row['incomplete']} incomplete)" if row["incomplete"] else ""
        lines.append(f"| {row['encoder']} | {weights} | {row['task']} | {row['camera']} | {row['demos']} | "
                     f"{row['policy']} | {row['protocol']} | {len(row['seeds'])}{note} | {'/'.join(map(str, row['episodes']))} | "
                     f"{_pm(row['best'], row['best_std'])} | {_pm(row['final'], row['final_std'])} | "
                     f"{_pm_heldout(row)} |")
    return "\n".join(lines)


def plot_summary(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Bar chart of best, final and best_heldout success per row (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['encoder']}\n{_WEIGHTS_LABEL[r['weights']]}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 3.8), dpi=120)
    for k, (what, off) in enumerate((("best", -0.27), ("final", 0.0), ("best_heldout", 0.27))):
        ax.bar([i + off for i in x], [r.get(what) or 0.0 for r in rows], width=0.26, label=what,
               yerr=[r.get(f"{what}_std") or 0.0 for r in rows], capsize=3, color=("C0", "C1", "C2")[k])
    ax.set_xticks(list(x), labels, fontsize=8)
    for tick, r in zip(ax.get_xticklabels(), rows):
        if r["weights"] == "random":
            tick.set_color("red")
    style_success_bars(ax, title)
    save_figure(fig, path)
