#!/usr/bin/env bash
# Klondike 1,000-seed and Spiderette runs on 4 cores of a many-core machine (see box_run.py).
# Usage, from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:):/tmp/site OUT=<empty dir> \
#     bash packages/solvitaire/benchmarks/box_run.sh
# Knobs (environment): BUDGET_S (default 480: wall seconds for the whole script, enforced
# inside and by `timeout`), CORES (default 12-15), JOBS (default 4), KL_DEALS (1000),
# KL_FIRST (714), KL_RETRY (seeds run first), SKIP_SPIDER=1 (no Spiderette phase),
# KL_TIMEOUT (60 s per Klondike deal), KL_ORDER (search order(s) for Klondike), KL_SKIP
# (seeds left out), KL_SLOWEST_FIRST=1 (longest deals first),
# MEM_GIB (3 GiB per solve),
# SP_SEEDS (40 Spiderette seeds), EXTRA_GAMES and EXTRA_TIMEOUT (other games, seeds 1-40),
# REF_GAMES (games or `all`: every deal the reference decided, first) and REF_TIMEOUT (60 s);
# REF_ORDER (search order(s) for them), REF_ONLY (game:seed,...); KL_RETRY= KL_DEALS=0: no Klondike.
# MIXED=1: every phase's solves go to the pool at once, longest limit first (MIXED_ORDER=short:
# shortest first), so no core idles at a phase's end.
# Writes to $OUT: box_run.log, spiderette.jsonl, klondike.jsonl, extra.jsonl, summary.json.
set -euo pipefail
: "${OUT:?set OUT to an empty directory}"
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-480}
CORES=${CORES:-12-15}
export JOBS=${JOBS:-4}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1
export PYTHONUNBUFFERED=1
here=$(dirname "$0")
pin=()
if command -v taskset >/dev/null 2>&1 && taskset -c "$CORES" true 2>/dev/null; then
  pin=(taskset -c "$CORES")
fi
# the Python driver stops collecting at BUDGET_S - 20 s; `timeout` is the hard stop
timeout --signal=INT --kill-after=15 "$((BUDGET_S))" \
  "${pin[@]}" python "$here/box_run.py" --budget "$((BUDGET_S - 20))" 2>&1 \
  | tee -a "$OUT/box_run.stdout.log"
echo "box_run: done; summary:"
cat "$OUT/summary.json" 2>/dev/null || echo "(no summary: the run was cut; see $OUT/*.jsonl)"
