"""The paper-style table of a sweep: success per task, per camera and the mean over tasks, as
mean ± std over seeds with a bootstrap 95 % confidence interval, for each of ``best`` (the
maximum over evaluations, as R3M reports it), ``final`` (the last evaluation) and ``best_heldout``
(the best checkpoint re-evaluated on episode seeds not used to choose it) when the runs carry it.

A "mean over tasks" row averages, for each seed, the tasks that seed finished, then takes the
statistics over seeds; a task without a finished cell is named in the row (the mean is then over
fewer tasks, never silently). One seed has no spread: its std and CI are ``None`` (printed "n/a").
The bootstrap resamples seeds with replacement (fixed RNG seed, so the table is reproducible).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from robot.results import save_figure, style_success_bars

METRICS = ("best", "final", "best_heldout")
BOOTSTRAP_SAMPLES = 10_000
MEAN_OVER_TASKS = "mean over tasks"


def run_metric(results: dict, metric: str) -> float | None:
    """Success rate in percent of one run for ``metric`` (None when the run does not carry it)."""
    v = results.get(metric)
    if isinstance(v, dict):
        v = v.get("success_rate")
    return None if v is None else 100.0 * float(v)


def bootstrap_ci(values: list[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """Percentile 95 % interval of the mean of ``values`` over ``samples`` resamples (None for one value)."""
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    v = np.asarray(values, dtype=np.float64)
    means = v[rng.integers(0, len(v), (samples, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def stats(values: list[float], samples: int = BOOTSTRAP_SAMPLES) -> dict | None:
    if not values:
        return None
    v = np.asarray(values, dtype=np.float64)
    std = float(v.std(ddof=1)) if len(v) > 1 else None
    ci = bootstrap_ci(values, samples)
    return {"mean": float(v.mean()), "std": std, "ci95": None if ci is None else list(ci), "n": len(values)}


def _cell_key(r: dict) -> tuple:
    return (int(r["demos"]["num"]), r["env"]["camera"], r["env"]["task"])


def table_rows(runs: list[dict], samples: int = BOOTSTRAP_SAMPLES) -> list[dict]:
    """One row per (demos, camera, task) plus one "mean over tasks" row per (demos, camera).

    ``runs``: results.json dicts of finished cells (one per task x camera x demos x seed)."""
    by_cell: dict[tuple, dict[int, dict]] = {}
    for r in runs:
        by_cell.setdefault(_cell_key(r), {})[int(r["seed"])] = r
    rows = []
    groups = sorted({(d, c) for d, c, _ in by_cell})
    for demos, camera in groups:
        tasks = sorted(t for d, c, t in by_cell if (d, c) == (demos, camera))
        per_seed_task: dict[str, dict[int, dict[str, float]]] = {m: {} for m in METRICS}
        for task in tasks:
            seeds = by_cell[(demos, camera, task)]
            row = {"demos": demos, "camera": camera, "task": task, "seeds": sorted(seeds)}
            for m in METRICS:
                vals = {s: run_metric(r, m) for s, r in seeds.items()}
                vals = {s: v for s, v in vals.items() if v is not None}
                row[m] = stats(list(vals.values()), samples)
                for s, v in vals.items():
                    per_seed_task[m].setdefault(s, {})[task] = v
            rows.append(row)
        mean_row = {"demos": demos, "camera": camera, "task": MEAN_OVER_TASKS, "tasks": tasks}
        all_seeds = sorted({s for t in tasks for s in by_cell[(demos, camera, t)]})
        mean_row["seeds"] = all_seeds
        for m in METRICS:
            per_seed = [np.mean(list(per_seed_task[m][s].values())) for s in all_seeds if s in per_seed_task[m]]
            mean_row[m] = stats([float(x) for x in per_seed], samples)
            missing = sorted({f"{t} (seed {s})" for s in all_seeds for t in tasks
                              if s in per_seed_task[m] and t not in per_seed_task[m][s]})
            if missing:
                mean_row.setdefault("missing", {})[m] = missing
        rows.append(mean_row)
    return rows


def format_stat(s: dict | None) -> str:
    if s is None:
        return "-"
    if s["std"] is None:
        return f"{s['mean']:.1f} (1 seed: n/a)"
    lo, hi = s["ci95"]
    return f"{s['mean']:.1f} ± {s['std']:.1f} [{lo:.1f}, {hi:.1f}]"


def markdown_table(rows: list[dict], title: str = "") -> str:
    """Markdown: success (%) mean ± std over seeds [bootstrap 95 % CI] per metric."""
    metrics = [m for m in METRICS if any(r.get(m) is not None for r in rows)]
    head = "| demos | camera | task | seeds | " + " | ".join(f"{m} (%)" for m in metrics) + " |"
    lines = ([f"**{title}**", ""] if title else []) + [head, "|" + "---|" * (4 + len(metrics))]
    for r in rows:
        task = f"**{r['task']}**" if r["task"] == MEAN_OVER_TASKS else r["task"]
        note = " (missing: " + ", ".join(sorted({x for v in r["missing"].values() for x in v})) + ")" \
            if r.get("missing") else ""
        lines.append(f"| {r['demos']} | {r['camera']} | {task}{note} | {len(r['seeds'])} | "
                     + " | ".join(format_stat(r.get(m)) for m in metrics) + " |")
    lines.append("")
    lines.append("success rate in percent: mean ± sample std over seeds [bootstrap 95 % CI of the mean over "
                 "seeds]; best = max over evaluations (as R3M reports it), final = last evaluation, best_heldout "
                 "= best checkpoint on held-out episode seeds")
    return "\n".join(lines)


def plot_rows(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Bars per (demos, camera, task), one colour per metric, error bars = bootstrap 95 % CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(r.get(m) is not None for r in rows)]
    labels = [f"{r['task']}\n{r['camera']}, {r['demos']} demos" for r in rows]
    width = 0.8 / max(1, len(metrics))
    fig, ax = plt.subplots(figsize=(2.0 + 1.1 * len(rows), 4.0), dpi=110)
    for k, m in enumerate(metrics):
        xs = [i + (k - (len(metrics) - 1) / 2) * width for i in range(len(rows))]
        means = [r[m]["mean"] if r.get(m) else math.nan for r in rows]
        err = [[0.0, 0.0] if not r.get(m) or r[m]["ci95"] is None else
               [r[m]["mean"] - r[m]["ci95"][0], r[m]["ci95"][1] - r[m]["mean"]] for r in rows]
        ax.bar(xs, means, width=width, label=m, yerr=np.array(err).T, capsize=2, color=f"C{k}")
    ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
    style_success_bars(ax, title)
    save_figure(fig, path)
