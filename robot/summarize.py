"""Markdown table of a sweep's success rates, mean ± std over seeds::

    python robot/summarize.py multirun/train_bc/2026-01-01_12-00-00 [--out table.md]

Finds every ``results.json`` under DIR (one per run of ``robot/train_bc.py --multirun``), groups
runs by encoder, weights, task, camera, number of demos and policy, and prints one row per
group with the best and the final evaluation's success rate (percent; sample std over seeds).
Random-weight encoders are marked RANDOM WEIGHTS.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot.results import find_results, load_results, summary_table  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="directory holding run directories with results.json")
    ap.add_argument("--out", help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    root = Path(args.dir)
    if not root.is_dir():
        print(f"summarize: {root} is not a directory", file=sys.stderr)
        return 2
    paths = find_results(root)
    if not paths:
        print(f"summarize: no results.json under {root}", file=sys.stderr)
        return 1
    table = summary_table(load_results(paths))
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
