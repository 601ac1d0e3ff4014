"""``results.json`` of a BC run, its success-curve plot, and tables over runs.

``results.json``::

    {"format": "egohod-bc-results/1",
     "encoder": {"name", "weights" ("random:seed=N" | sha256 | "none"), "random_weights", "seed", "checkpoint",
                 "frames", ...},
     "label": "egovideo_tiny (RANDOM WEIGHTS, seed 0)",
     "env": {"task", "camera", ...}, "demos": {"num", "path", "sha256"}, "policy": {...}, "seed": 0,
     "evals": [{"step", "success_rate", "episodes": [{"seed", "success", "steps", "success_step",
                "solved_steps"}, ...]}, ...],
     "best": {"step", "success_rate"}, "final": {"step", "success_rate"},
     "train": {"steps", "loss", "seconds"}, "complete": true}
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from .features import atomic_write_bytes

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

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(Path(path), json.dumps(self.data, indent=1).encode())


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
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


# --- tables over runs -----------------------------------------------------------------------

def _mean_std(values: list[float]) -> str:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


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


def summary_table(runs: list[dict]) -> str:
    """Markdown table: one row per (encoder, weights, task, camera, demos, policy), success
    mean ± std (percent, sample std) over seeds of the best and the final evaluation."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if not r.get("evals"):
            continue
        enc = r["encoder"]
        weights = "RANDOM WEIGHTS" if enc.get("random_weights") else (enc.get("weights") or "")[:12]
        key = (enc["name"], weights, r["env"]["task"], r["env"]["camera"], r["demos"]["num"],
               r.get("policy", {}).get("name", "?"))
        groups.setdefault(key, []).append(r)
    lines = ["| encoder | weights | task | camera | demos | policy | seeds | episodes | best success (%) | final success (%) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rs = groups[key]
        episodes = sorted({len(r["evals"][-1]["episodes"]) for r in rs})
        incomplete = sum(not r.get("complete") for r in rs)
        note = f" ({incomplete} incomplete)" if incomplete else ""
        lines.append("| " + " | ".join(map(str, key)) + f" | {len(rs)}{note} | {'/'.join(map(str, episodes))} | "
                     f"{_mean_std([r['best']['success_rate'] for r in rs])} | "
                     f"{_mean_std([r['final']['success_rate'] for r in rs])} |")
    return "\n".join(lines)
