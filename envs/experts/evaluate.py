"""Measure the scripted experts: success rate and steps to success per task, state only.

    python -m envs.experts.evaluate --tasks all --seeds 100 [--json out.json] [--workers 2]

Prints a markdown table (task, success %, mean steps to the first solved step, episodes) and
the same numbers as JSON. Episodes are seeded ``seed0 .. seed0 + seeds - 1``; no rendering.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass


@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    first_solved_step: int | None  # 1-based control step at which the task was first solved
    solved_steps: int
    final_distance: float


def run_episode(task: str, seed: int, env=None, expert=None, horizon: int | None = None) -> EpisodeResult:
    """Roll the task's expert for one seeded episode without rendering."""
    import envs
    from envs.experts import make_expert

    env = env if env is not None else envs.make(f"kitchen/{task}", camera=None)
    expert = expert if expert is not None else make_expert(task)
    obs, info = env.reset(seed=seed)
    expert.reset(env)
    first = None
    steps = horizon or getattr(env.unwrapped, "horizon", 50)
    for t in range(steps):
        obs, reward, terminated, truncated, info = env.step(expert.act(env))
        if info.get("is_solved") and first is None:
            first = t + 1
        if terminated or truncated:
            break
    return EpisodeResult(task, seed, bool(info["success"]), first, int(info["solved_steps"]),
                         float(info["task_distance"]))


def evaluate_task(task: str, seeds, progress: bool = True) -> list[EpisodeResult]:
    import envs
    from envs.experts import make_expert

    env = envs.make(f"kitchen/{task}", camera=None)
    expert = make_expert(task)
    seeds = list(seeds)
    it = seeds
    if progress:
        from tqdm import tqdm

        it = tqdm(seeds, desc=task, leave=False, file=sys.stderr)
    out = [run_episode(task, s, env, expert) for s in it]
    env.close()
    return out


def _task_worker(args) -> list[EpisodeResult]:
    task, seeds = args
    return evaluate_task(task, seeds, progress=False)


def summarize(results: list[EpisodeResult]) -> dict:
    n = len(results)
    ok = [r for r in results if r.success]
    solved = [r.first_solved_step for r in results if r.first_solved_step is not None]
    return {
        "episodes": n,
        "success_rate": len(ok) / n if n else 0.0,
        "mean_first_solved_step": (sum(solved) / len(solved)) if solved else None,
        "failed_seeds": [r.seed for r in results if not r.success],
    }


def markdown_table(summary: dict[str, dict]) -> str:
    lines = ["| task | success (%) | mean steps to solve | episodes |", "| --- | ---: | ---: | ---: |"]
    for task, s in summary.items():
        steps = "-" if s["mean_first_solved_step"] is None else f"{s['mean_first_solved_step']:.1f}"
        lines.append(f"| {task} | {100 * s['success_rate']:.1f} | {steps} | {s['episodes']} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    from envs.experts import list_experts

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="all", help="comma-separated task names, or 'all'")
    p.add_argument("--seeds", type=int, default=100, help="episodes per task")
    p.add_argument("--seed0", type=int, default=0, help="first seed")
    p.add_argument("--workers", type=int, default=1, help="processes (one task per process)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    known = list_experts()
    tasks = known if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        p.error(f"unknown task(s) {', '.join(unknown)}; experts exist for: {', '.join(known)}")
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    seeds = range(args.seed0, args.seed0 + args.seeds)

    t0 = time.time()
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(args.workers, len(tasks))) as pool:
            per_task = pool.map(_task_worker, [(t, seeds) for t in tasks])
    else:
        per_task = [evaluate_task(t, seeds) for t in tasks]
    summary = {t: summarize(r) for t, r in zip(tasks, per_task)}
    report = {
        "seeds": [seeds.start, seeds.stop - 1],
        "seconds": round(time.time() - t0, 1),
        "tasks": summary,
        "episodes": {t: [asdict(e) for e in r] for t, r in zip(tasks, per_task)},
    }
    print(markdown_table(summary))
    print(json.dumps({"seeds": report["seeds"], "seconds": report["seconds"], "tasks": summary}))
    if args.json:
        import os

        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, args.json)
    return report


if __name__ == "__main__":
    main()
