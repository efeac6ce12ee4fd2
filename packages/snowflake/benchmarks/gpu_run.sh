#!/usr/bin/env bash
# snowflake on the 16-core machine (CPU only; no GPU needed). Two phases, each in its own $OUT:
#   phase a (default): throughput alone on cores 0-15, budget SNOWFLAKE_BUDGET (default 100 s;
#     with the serial-time measurement and the GPU tests <= 160 s);
#   phase b (gpu_run_b.sh): experiments on SNOWFLAKE_CORES (default 4-15; 8-31 on the 32-core
#     box) next to other jobs, budget SNOWFLAKE_BUDGET (default 490 s). SNOWFLAKE_B_SUITE=kl:
#     only the 9 Centipede-20 divergence runs; SNOWFLAKE_DECODER_GAIN: GNN decoder output gain.
# SNOWFLAKE_DEVICE=auto|cpu|cuda: where the policy maths runs (auto: a visible GPU if any; the
# physics always runs on the cores). SNOWFLAKE_C20_INIT_LOG_STD (default 0): phase b C-20 runs.
# Run from the repository root with mujoco + gymnasium importable (e.g. /tmp/site on PYTHONPATH):
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:):/tmp/site OUT=<dir> bash packages/snowflake/benchmarks/gpu_run.sh
# Smoke test on a small CPU box: SNOWFLAKE_SMOKE=1 OUT=/tmp/sfa bash packages/snowflake/benchmarks/gpu_run.sh
set -uo pipefail
export SNOWFLAKE_T0="${SNOWFLAKE_T0:-$(date +%s)}"  # the python budget counts from here
PHASE="${SNOWFLAKE_PHASE:-a}"
OUT="${OUT:-/tmp/snowflake_out_$PHASE}"
mkdir -p "$OUT"
LOG="$OUT/snowflake_${PHASE}_log.txt"
export PYTHONPATH="packages/snowflake/src:${PYTHONPATH:-}"
if [[ "$PHASE" == "a" ]]; then
  CORES="${SNOWFLAKE_CORES:-0-15}"; BUDGET="${SNOWFLAKE_BUDGET:-100}"; NT=16
else
  CORES="${SNOWFLAKE_CORES:-4-15}"; BUDGET="${SNOWFLAKE_BUDGET:-490}"; NT=1
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=$NT MKL_NUM_THREADS=$NT
if ! python3 -c "import mujoco, gymnasium" 2>/dev/null && ls .whl/snowflake/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/snowflake/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
ARGS=(--phase "$PHASE" --out "$OUT" --runs "/tmp/snowflake_runs_$PHASE")
if [[ "${SNOWFLAKE_SMOKE:-0}" == "1" ]]; then ARGS+=(--smoke); fi
rm -rf "/tmp/snowflake_runs_$PHASE"
N=$(nproc --all)
if [[ "$N" -lt 16 ]]; then CORES="0-$(( N - 1 ))"; fi  # small box (smoke test)
python3 -c "import mujoco, gymnasium, torch; print('mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__, 'torch', torch.__version__)" 2>&1 | tee "$LOG"
echo "phase $PHASE cores $CORES budget ${BUDGET}s" | tee -a "$LOG"
PIN=(taskset -c "$CORES")
"${PIN[@]}" true 2>/dev/null || PIN=()  # no taskset, or these cores not allowed here
timeout -k 5 $(( BUDGET + 10 )) "${PIN[@]}" python3 packages/snowflake/benchmarks/gpu_bench.py \
  "${ARGS[@]}" --budget "$BUDGET" 2>&1 | tee -a "$LOG"
rc=$?
if [[ "$PHASE" == "a" ]]; then  # GIL-held CPU time per env step on one thread (<= 20 s)
  echo "serial time per env step (benchmarks/vector_serial.py, one thread)" | tee -a "$LOG"
  timeout -k 5 20 "${PIN[@]}" python3 packages/snowflake/benchmarks/vector_serial.py --steps 20 \
    --reps 1 2>&1 | tail -4 | tee -a "$LOG"
fi
if [[ "$PHASE" == "a" ]] && python3 -c "import torch, pytest, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  # CUDA-graph update and rollout policy vs eager, GNN schedules, on the GPU (<= 30 s).
  echo "gpu tests: CUDA-graph PPO step/policy vs eager, batched vs per-type GNN" | tee -a "$LOG"
  timeout -k 5 30 python3 -m pytest -q -p no:cacheprovider -m gpu \
    packages/snowflake/tests/test_snowflake_graphs.py 2>&1 | tail -15 | tee -a "$LOG"
fi
echo "snowflake phase $PHASE exit $rc; files:" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
exit $rc
