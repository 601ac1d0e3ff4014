"""Markdown table of a sweep's success rates, mean ± std over seeds::

    python robot/summarize.py multirun/train_bc/2026-01-01_12-00-00 [--out table.md] [--json summary.json] [--plot summary.png]

Finds every ``results.json`` under DIR (one per run of ``robot/train_bc.py --multirun``), groups
runs by encoder, weights, task, camera, number of demos and policy, and prints one row per
group with three success rates (percent; mean, and sample std over seeds when there are two or
more): ``best`` (the maximum over the evaluations, as R3M reports it: optimistic, the same
episodes choose and score it), ``final`` (the last evaluation) and ``best_heldout`` (the best
checkpoint re-evaluated on held-out episode seeds; ``n/a`` for runs without it). Random-weight
encoders are marked RANDOM WEIGHTS. ``--json`` writes the rows (``encoder``, ``weights``:
``pretrained`` | ``random`` | ``none``, ``best``, ``final``, ``best_heldout`` in percent, their std
over seeds (null for one seed), seeds, task, camera, ...) and ``--plot`` a bar chart of the three.
``egohod-summarize-bc DIR`` is the same command, installed with the package.
"""
import argparse
import json
import sys
from pathlib import Path

from egohod.fileio import atomic_write_text
from robot.results import find_results, load_results, plot_summary, summary_rows, summary_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="directory holding run directories with results.json")
    ap.add_argument("--out", help="also write the table to this markdown file")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--plot", help="also draw best / final / best_heldout success per row into this PNG")
    args = ap.parse_args(argv)
    root = Path(args.dir)
    if not root.is_dir():
        print(f"summarize: {root} is not a directory", file=sys.stderr)
        return 2
    paths = find_results(root)
    if not paths:
        print(f"summarize: no results.json under {root}", file=sys.stderr)
        return 1
    runs = load_results(paths)
    table = summary_table(runs)
    print(table)
    if args.out:
        atomic_write_text(args.out, table + "\n")
    rows = summary_rows(runs)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1) + "\n")
    if args.plot:
        plot_summary(rows, args.plot, title=str(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
