#!/usr/bin/env bash
# snowflake phase a on the 16-core machine (cores 0-15, no GPU needed), <= 540 s wall:
# correctness, env throughput vs gymnasium AsyncVectorEnv, PPO-iteration overhead, and the
# Centipede-20 policy-divergence experiment (mlp / nervenet / snowflake x 3 seeds).
# Run from the repository root with mujoco + gymnasium importable (e.g. /tmp/site on PYTHONPATH):
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) OUT=<dir> bash packages/snowflake/benchmarks/gpu_run.sh
# Smoke test on a small CPU box: SNOWFLAKE_SMOKE=1 OUT=/tmp/sfa bash packages/snowflake/benchmarks/gpu_run.sh
set -uo pipefail
PHASE="${SNOWFLAKE_PHASE:-a}"
OUT="${OUT:-/tmp/snowflake_out_$PHASE}"
mkdir -p "$OUT"
LOG="$OUT/snowflake_${PHASE}_log.txt"
export PYTHONPATH="packages/snowflake/src:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=16 MKL_NUM_THREADS=16
if ! python3 -c "import mujoco, gymnasium" 2>/dev/null && ls .whl/snowflake/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/snowflake/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
ARGS=(--phase "$PHASE" --out "$OUT" --runs "/tmp/snowflake_runs_$PHASE")
BUDGET=480
if [[ "${SNOWFLAKE_SMOKE:-0}" == "1" ]]; then ARGS+=(--smoke); BUDGET=300; fi
rm -rf "/tmp/snowflake_runs_$PHASE"
CORES=0-15
if [[ "$(nproc --all)" -lt 16 ]]; then CORES="0-$(( $(nproc --all) - 1 ))"; fi
python3 -c "import mujoco, gymnasium, torch; print('mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__, 'torch', torch.__version__)" 2>&1 | tee "$LOG"
echo "cores $CORES" | tee -a "$LOG"
PIN=(taskset -c "$CORES")
"${PIN[@]}" true 2>/dev/null || PIN=()  # no taskset, or cores 0-15 not allowed here
timeout -k 10 530 "${PIN[@]}" python3 packages/snowflake/benchmarks/gpu_bench.py \
  "${ARGS[@]}" --budget "$BUDGET" 2>&1 | tee -a "$LOG"
rc=$?
echo "snowflake phase $PHASE exit $rc; files:" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
exit $rc
