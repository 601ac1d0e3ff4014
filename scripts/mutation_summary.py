"""Per-file counts from a mutmut 2 cache (``.mutmut-cache``), over the sample a
``MUT_SAMPLE=K scripts/mutation_run.sh`` run tested (K=1: every mutant).

    python scripts/mutation_summary.py /tmp/mut_x/.mutmut-cache [--sample K] [--survivors]

Kill rate = killed / tested, where timeouts count as killed (the tests did not pass) but are
also listed apart; "untested" are sampled mutants the run did not reach."""
from __future__ import annotations

import argparse
import sqlite3
import zlib
from collections import Counter, defaultdict

COLUMNS = ("ok_killed", "bad_timeout", "ok_suspicious", "bad_survived", "untested")


def in_sample(filename: str, line: str, index: int, k: int) -> bool:
    return zlib.crc32(f"{filename}|{line}|{index}".encode()) % k == 0


def rows(cache: str):
    con = sqlite3.connect(cache)
    yield from con.execute(
        'SELECT s.filename, l.line, l.line_number, m."index", m.status, m.id FROM Mutant m '
        "JOIN Line l ON m.line = l.id JOIN SourceFile s ON l.sourcefile = s.id ORDER BY m.id")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache")
    ap.add_argument("--sample", type=int, default=1)
    ap.add_argument("--survivors", action="store_true", help="list the surviving mutants' ids and lines")
    ap.add_argument("--survivor-ids", action="store_true", help="print only the surviving mutants' ids")
    args = ap.parse_args(argv)
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for filename, line, line_number, index, status, mid in rows(args.cache):
        if not in_sample(filename, line, index, args.sample):
            continue
        status = "untested" if status == "skipped" else status
        counts[filename][status] += 1
        counts[filename]["total"] += 1
        if status == "bad_survived":
            survivors.append((filename, mid, line_number + 1, line.strip()))
    if args.survivor_ids:
        print(" ".join(str(mid) for _, mid, _, _ in survivors))
        return 0
    print(f"{'file':48} {'mutants':>7} {'killed':>6} {'timeout':>7} {'slow':>5} {'survived':>8} {'untested':>8} {'kill rate':>9}")
    for filename, c in sorted(counts.items()):
        killed = c["ok_killed"] + c["ok_suspicious"] + c["bad_timeout"]
        tested = killed + c["bad_survived"]
        rate = f"{100 * killed / tested:.0f} %" if tested else "-"
        print(f"{filename:48} {c['total']:>7} {killed:>6} {c['bad_timeout']:>7} {c['ok_suspicious']:>5} "
              f"{c['bad_survived']:>8} {c['untested']:>8} {rate:>9}")
    if args.survivors:
        for filename, mid, line_number, line in survivors:
            print(f"survived {filename}:{line_number} id={mid}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
