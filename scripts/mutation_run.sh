#!/usr/bin/env bash
# One mutmut 2 run over PATHS with the given test files, through the fork server
# (scripts/mutation_forkserver.py), inside a throw-away git worktree. docs/testing.md has the
# commands that produced the published table.
#
#   [MUT_SAMPLE=K] scripts/mutation_run.sh WORKTREE NAME PATHS TEST_FILE...
#
# MUT_SAMPLE=K tests only the mutants whose crc32("file|line text|index") % K == 0 (the others are
# reported as skipped); the same K picks the same mutants of the same source in every run, so a
# before and an after run compare the same sample. Default 1: every mutant.
# Re-running in the same worktree after tests changed re-tests only the mutants not killed before
# (mutmut 2 keeps a killed mutant killed). Never run `mutmut show`/`results` in a worktree while
# its run is going: they re-read the mutated file and drop that line's mutants from the cache.
#
# WORKTREE must be a `git worktree add --detach` copy (mutmut 2 edits files in place): the script
# refuses to run in a checkout whose path is the repository's main worktree. Results: the
# worktree's .mutmut-cache (`mutmut results` / `mutmut show ID` there) and
# $MUT_OUT/NAME.{log,results.txt} (MUT_OUT defaults to /tmp/mutation).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 WORKTREE NAME PATHS TEST_FILE..." >&2; exit 2; }
wt=$(realpath "$1"); name=$2; paths=$3; shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
mutmut=${MUTMUT:-$(dirname "$py")/mutmut}
server=$here/scripts/mutation_forkserver.py
out=${MUT_OUT:-/tmp/mutation}
mkdir -p "$out"
main_wt=$(git -C "$wt" worktree list --porcelain | sed -n '1s/^worktree //p')
if [ "$(realpath "$main_wt")" = "$wt" ]; then
  echo "refusing: $wt is the main checkout; make one with: git worktree add --detach /tmp/mut_x HEAD" >&2
  exit 2
fi
sock=$out/$name.sock
sample=${MUT_SAMPLE:-1}
cat > "$wt/mutmut_config.py" <<PY
# written by scripts/mutation_run.sh: test one mutant in $sample (crc32 of file, line text, index)
import zlib


def in_sample(filename, line, index, k=$sample):
    return zlib.crc32(f"{filename}|{line}|{index}".encode()) % k == 0


def pre_mutation(context):
    mid = context.mutation_id
    if not in_sample(context.filename, mid.line, mid.index):
        context.skip = True
PY
# --basetemp: pytest otherwise prunes the machine-wide /tmp/pytest-of-$USER after every session,
# which costs seconds per mutant on a shared machine
pytest_args=(-q -p no:cacheprovider "--basetemp=$out/$name.tmp" "$@")
cd "$wt"
rm -f "$sock" "$out/$name.server.log"  # a previous run's "ready" line must not count
PYTHONPATH="$wt${PYTHONPATH:+:$PYTHONPATH}" nice -n 10 "$py" "$server" serve --socket "$sock" -- "${pytest_args[@]}" > "$out/$name.server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
until grep -qs "fork server ready" "$out/$name.server.log"; do
  kill -0 $server_pid 2>/dev/null || { cat "$out/$name.server.log" >&2; exit 1; }
  sleep 1
done
start=$(date +%s)
runner="$py -S $server run --socket $sock -- -x ${pytest_args[*]}"
set +e
nice -n 10 "$mutmut" run --paths-to-mutate "$paths" --tests-dir tests --simple-output \
  --runner "$runner" > "$out/$name.log" 2>&1
rc=$?
set -e
echo "mutmut run rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$out/$name.log"
"$mutmut" results > "$out/$name.results.txt" 2>&1 || true
"$py" "$here/scripts/mutation_summary.py" "$wt/.mutmut-cache" --sample "$sample" | tee "$out/$name.summary.txt"
git -C "$wt" diff --quiet -- "$paths" || { echo "WARNING: $paths left modified in $wt" >&2; exit 1; }
