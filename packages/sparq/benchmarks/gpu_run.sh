#!/usr/bin/env bash
# SparQ kernels on one GPU, in timed phases that all write into $OUT (6 files at most):
#   1. (TESTS=1) kernel tests on the GPU: programmatic dependent launch (graph replay with
#      overlapping launches must equal the serialised output; on failure or timeout the tuner
#      does not adopt PDL; TEST_K: -k expression, EXTRA_TESTS: more test files, TEST_ABORT=1:
#      a failure stops the run)                                            -> log
#   2. tuning. TUNE_MODE=fast (default): tune_sparq.py --fast on K2, E2E, K3 (TUNE_ONLY): every
#      launch variant checked against the references, then timed (CUDA graphs, 100 replays,
#      rotating inputs); the best pipeline then checked and timed serialised, with programmatic
#      dependent launch, with L2 eviction hints and with both (each mode's graph replay must
#      equal the serialised output first), and dense; committed entries (K1) are kept, and
#      also where a retune is slower. TUNE_MODE=pdl: only the launch modes of the committed
#      entries. TUNE_MODE=attend: the committed entries (TUNE_ONLY, default K3,E2E,K2) against
#      the fused selection + attention variants (ATTEND, tune_sparq.py --attend), serialised
#      and with programmatic dependent launch. TUNE_MODE=streams: tune_streams.py, the committed
#      entries (TUNE_ONLY, default E2E,K2,K1,K3) run as STREAMS (default 1,2,3,2p,3p) staggered
#      parts (np: on streams of decreasing priority)                       -> sparq_tuned.json
#   3. profile_sparq.py: per-kernel device times of the tuned pipelines (PROF_ONLY=K2,K3;
#      PROF_E2E=--e2e: one end-to-end step; DIAG_ONLY=K2: the histogram candidate pass broken
#      down first)
#                                                                           -> log (PROFILE_JSON)
#   4. the harness cases with that table (SPARQ_TUNED_JSON): K1-K4 decode, end-to-end decode
#      -> sparq_decode_*.{json,md}, sparq_e2e_decode_*.{json,md}
#   3b. (E2E_DIAG=1) e2e_diag.py: one end-to-end step per attention / model variant and the
#      kernels inside the graph (printed into the log); DIAG_SERIES="opts;opts": only the
#      per-step series of 64 replays and NVML samples, one model per option set
#   5. the GPU kernel tests (accuracy grid, CUDA graphs, PDL) with the time left (GRID=0 skips
#      them; GRID_FILES / GRID_K / GRID_M: other test files, -k / -m expressions)   -> log
# CASES: harness cases of phase 4 (default sparq_decode,sparq_e2e_decode).
# Budget knob: BUDGET (seconds, default 235) for the whole run; T_TEST (default 60), T_TUNE
# (default 130, at most BUDGET minus what is spent minus 95 s) and T_PROF (default 25) cap
# phases 1-3, phase 4 gets what is left (each case is written when it ends).
# CPU threads: THREADS (default 4). Run from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) OUT=/tmp/o bash packages/sparq/benchmarks/gpu_run.sh
# CPU smoke test (tiny shapes, Triton interpreter):
#   SMOKE=1 DEVICE=cpu TRITON_INTERPRET=1 OUT=/tmp/x PYTHONPATH=... bash packages/sparq/benchmarks/gpu_run.sh
# Afterwards copy $OUT/sparq_tuned.json to packages/sparq/src/sparq/kernels/tuned.json (the
# committed table the dispatch reads on the same GPU model) and the rest to benchmarks/results/.
set -u
set -o pipefail
OUT=${OUT:-/tmp/sparq_out}
mkdir -p "$OUT"
LOG="$OUT/sparq_gpu_run_log.txt"
export PYTHONUNBUFFERED=1
THREADS=${THREADS:-4}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
START=$(date +%s)
BUDGET=${BUDGET:-235}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
HERE=packages/sparq/benchmarks
# the harness validates its JSON with jsonschema; install carried wheels when it is missing
if ! python3 -c "import jsonschema" 2>/dev/null && [ -d .sparq_whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/sparq_site .sparq_whl/*.whl \
    && export PYTHONPATH=/tmp/sparq_site:${PYTHONPATH:-}
fi
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>/dev/null
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$LOG"

# 1. tests (kernel tests run on CUDA when TRITON_INTERPRET is unset)
if [ "${TESTS:-0}" = "1" ] && [ "$SMOKE" != "1" ]; then
  echo "== phase 1: GPU tests ($(left) s left)" | tee -a "$LOG"
  # a failed or cut PDL test keeps the tuner from adopting programmatic dependent launch
  if ! timeout ${T_TEST:-60} python3 -m pytest -q -x -p no:cacheprovider \
      -k "${TEST_K:-programmatic}" \
      packages/sparq/tests/test_sparq_kernel_gpu.py ${EXTRA_TESTS:-} 2>&1 | tail -15 | tee -a "$LOG"; then
    export SPARQ_TUNE_PDL=0
    echo "phase 1 failed or timed out: programmatic dependent launch not adopted" | tee -a "$LOG"
    # TEST_ABORT=1: a failed correctness check stops the run before anything is timed
    if [ "${TEST_ABORT:-0}" = "1" ]; then echo "phase 1 failed: stopping" | tee -a "$LOG"; exit 1; fi
  fi
fi

# 2. tuning (stops starting new variants at its budget, then writes what it has); TUNE_MODE=none
#    skips it (the committed table)
if [ "${TUNE_MODE:-fast}" != "none" ]; then
echo "== phase 2: tuning ($(left) s left)" | tee -a "$LOG"
TB=${T_TUNE:-130}
# the harness took 40 s in the 16:42 and 19:09 runs, the profile ~30 s: keep 95 s for them
[ "$TB" -gt $(( $(left) - 95 )) ] && TB=$(( $(left) - 95 ))
[ "$TB" -lt 10 ] && TB=10
BASE="--base packages/sparq/src/sparq/kernels/tuned.json"
if [ "${TUNE_MODE:-fast}" = "attend" ]; then
  SM="--attend ${ATTEND:-sp_x2_bk128_w8,sp,sp_bk128_w8,sp_x2,ss} $BASE --only ${TUNE_ONLY:-K3,E2E,K2}"
elif [ "${TUNE_MODE:-fast}" = "streams" ]; then
  SM="streams"
elif [ "${TUNE_MODE:-fast}" = "pdl" ]; then
  SM="--pdl-only $BASE --only ${TUNE_ONLY:-K2,E2E,K3,K1}"
else
  SM="--fast $BASE --only ${TUNE_ONLY:-K2,E2E,K3}"
fi
if [ "$SM" = "streams" ]; then
  # staggered streams on the committed entries: every n checked bit for bit against one stream
  timeout $((TB + 15)) python3 $HERE/tune_streams.py "$OUT" $BASE --only ${TUNE_ONLY:-E2E,K2,K1,K3} \
    --streams ${STREAMS:-1,2,3,2p,3p} --budget "$TB" $([ "$SMOKE" = "1" ] && echo --smoke) 2>&1 | tee -a "$LOG"
else
  [ "$SMOKE" = "1" ] && SM="--smoke"
  timeout $((TB + 15)) python3 $HERE/tune_sparq.py "$OUT" $SM --budget "$TB" 2>&1 | tee -a "$LOG"
fi
if [ -f "$OUT/sparq_tuned.json" ]; then export SPARQ_TUNED_JSON="$OUT/sparq_tuned.json"; fi
fi

# 3. per-kernel profile of the tuned pipelines (printed into the log)
if [ "$SMOKE" != "1" ] && [ "${PROFILE:-1}" = "1" ]; then
  echo "== phase 3: kernel profile ($(left) s left)" | tee -a "$LOG"
  TP=${T_PROF:-25}
  [ "$TP" -gt $(( $(left) - 50 )) ] && TP=$(( $(left) - 50 ))
  [ "$TP" -ge 5 ] && timeout $TP python3 $HERE/profile_sparq.py ${DIAG_ONLY:+--hist-diag $DIAG_ONLY} \
    --only ${PROF_ONLY:-K2,K3} ${PROF_E2E:-} 2>&1 | tee -a "$LOG"
fi

# 3b. (E2E_DIAG=1) one end-to-end step per attention variant and model variant, graph replays,
#     and the kernels inside the graph (printed into the log, E2E_DIAG_JSON line)
if [ "${E2E_DIAG:-0}" = "1" ]; then
  echo "== phase 3b: end-to-end step diagnosis ($(left) s left)" | tee -a "$LOG"
  TD=${T_DIAG:-70}
  [ "$TD" -gt $(( $(left) - 45 )) ] && TD=$(( $(left) - 45 ))
  rm -f /tmp/sparq_e2e_model.txt /tmp/sparq_e2e_table.txt
  [ "$TD" -ge 10 ] && timeout $TD python3 $HERE/e2e_diag.py /tmp/sparq_e2e_diag.json \
    --streams "${DIAG_STREAMS-2}" ${DIAG_SERIES:+--series --models "$DIAG_SERIES"} ${DIAG_SAMPLES:+--samples "$DIAG_SAMPLES"} $([ "$SMOKE" = "1" ] && echo --smoke) 2>&1 | tee -a "$LOG"
fi

# the end-to-end model's own options that gave the fastest SparQ step (SPARQ_E2E_MODEL set by the
# caller wins)
if [ -z "${SPARQ_E2E_MODEL+x}" ] && [ -f /tmp/sparq_e2e_model.txt ] && [ "${E2E_DIAG:-0}" = "1" ]; then
  export SPARQ_E2E_MODEL=$(cat /tmp/sparq_e2e_model.txt)
  echo "SPARQ_E2E_MODEL=$SPARQ_E2E_MODEL" | tee -a "$LOG"
fi

# the tuning table whose end-to-end entry's sample size gave the fastest SparQ steps (DIAG_SAMPLES)
if [ -f /tmp/sparq_e2e_table.txt ] && [ "${E2E_DIAG:-0}" = "1" ]; then
  export SPARQ_TUNED_JSON=$(cat /tmp/sparq_e2e_table.txt)
  echo "SPARQ_TUNED_JSON=$SPARQ_TUNED_JSON" | tee -a "$LOG"
fi

# 4. harness cases with the tuned table, each written as soon as it finishes
echo "== phase 4: benchmarks ($(left) s left)" | tee -a "$LOG"
TBENCH=$(( $(left) - 5 ))
[ "$TBENCH" -lt 20 ] && TBENCH=20
timeout $TBENCH python3 - "$OUT" "$DEVICE" "$SMOKE" 2>&1 <<'PY' | tee -a "$LOG"
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(int(os.environ.get("THREADS", "4")))
from monobench._runner import find_root, run_package, write_run

out, device, smoke = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
root = find_root()
cases = os.environ.get("CASES", "sparq_decode,sparq_e2e_decode").split(",")
for case in cases:
    run = run_package(root, "sparq", device=device, quick=smoke, only=case, warmup=3, repeats=20)
    jp, mp = write_run(run, out / f".{case}")
    for f in (jp, mp):  # flat in $OUT, one JSON + one markdown per case
        f.rename(out / f"{case}_{f.name}")
    (out / f".{case}").rmdir()
    for r in run["results"]:
        print(f"{r['id'][:58]:58s} {r['status']:5s} speedup={r.get('speedup') or 0:.2f}x "
              f"roof={r.get('roofline_fraction') or 0:.2f} "
              f"cand={r.get('candidate', {}).get('median_s', 0) * 1e3:.3f}ms "
              f"base={r.get('baseline', {}).get('median_s', 0) * 1e3:.3f}ms {r.get('error') or ''}",
              flush=True)
PY
# 5. the GPU accuracy grid (ragged batches, S >= 64k, CUDA-graph replay) through the dispatch
#    defaults, with whatever time is left (the 01:13 run ended 70 s inside its budget)
if [ "$SMOKE" != "1" ] && [ "${GRID:-1}" = "1" ] && [ "$(left)" -ge 25 ]; then
  echo "== phase 5: GPU accuracy grid ($(left) s left)" | tee -a "$LOG"
  timeout $(( $(left) - 5 )) python3 -m pytest -v -p no:cacheprovider ${GRID_K:+-k "$GRID_K"} ${GRID_M:+-m "$GRID_M"} \
    ${GRID_FILES:-packages/sparq/tests/test_sparq_kernel_gpu.py} 2>&1 | grep -E "PASS|FAIL|ERROR|passed|failed|Error" \
    | tail -16 | tee -a "$LOG"
fi
echo "== done in $(( $(date +%s) - START )) s (budget $BUDGET s); files in $OUT:" | tee -a "$LOG"
ls "$OUT" | tee -a "$LOG"
