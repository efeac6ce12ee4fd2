#!/usr/bin/env bash
# snowflake: one round of the Centipede-20 policy-divergence runs (benchmarks/kl_runs.py), split
# by seed over rounds; benchmarks/kl_merge.py joins the rounds' kl_metrics.csv files.
#   SNOWFLAKE_KL_RUNS   runs of this round, policy:seed,... (default: seed 0 of all three)
#   SNOWFLAKE_CORES     cores to use (default: all allowed), SNOWFLAKE_BUDGET wall s (default 315)
#   SNOWFLAKE_GPUS      GPU indices for the runs' maths (default: the last visible GPU)
#   SNOWFLAKE_DECODER_GAIN (default 1.0, NerveNet's init; the package default is 0.1),
#   SNOWFLAKE_C20_INIT_LOG_STD (default 0, sigma 1 as Snowflake's code; package default -1)
#   SNOWFLAKE_KL_RESUME kl_resume.tar.gz of an earlier round: its unfinished runs continue (name them
#                       in SNOWFLAKE_KL_RUNS too)
#   SNOWFLAKE_C6_PROCESS=1: also time Centipede-6 on one process and on ProcessVectorEnv (~12 s)
#   SNOWFLAKE_PPO_ITER  e.g. mlp,snowflake: first time one PPO iteration against stepping (~10 s each)
# Writes to $OUT: kl_log.txt, kl.json, kl.md, kl_metrics.csv, kl_c20.png, and kl_resume.tar.gz
# when runs stopped short of their steps (<= 6 files).
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:):/tmp/site OUT=<dir> \
#     SNOWFLAKE_KL_RUNS=mlp:0,nervenet:0,snowflake:0 bash packages/snowflake/benchmarks/gpu_run_kl.sh
# Smoke test on a small CPU box: SNOWFLAKE_SMOKE=1 SNOWFLAKE_BUDGET=60 OUT=/tmp/sfk bash ...
set -uo pipefail
export SNOWFLAKE_T0="${SNOWFLAKE_T0:-$(date +%s)}"
OUT="${OUT:-/tmp/snowflake_out_kl}"
mkdir -p "$OUT"
LOG="$OUT/kl_log.txt"
BUDGET="${SNOWFLAKE_BUDGET:-315}"
export PYTHONPATH="packages/snowflake/src:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if ! python3 -c "import mujoco, gymnasium" 2>/dev/null && ls .whl/snowflake/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/snowflake/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
PIN=()
if [[ -n "${SNOWFLAKE_CORES:-}" ]] && taskset -c "$SNOWFLAKE_CORES" true 2>/dev/null; then
  PIN=(taskset -c "$SNOWFLAKE_CORES")
fi
ARGS=(--out "$OUT" --work /tmp/snowflake_kl_runs --budget "$BUDGET"
      --runs "${SNOWFLAKE_KL_RUNS:-mlp:0,nervenet:0,snowflake:0}"
      --decoder-gain "${SNOWFLAKE_DECODER_GAIN:-1.0}" --init-log-std "${SNOWFLAKE_C20_INIT_LOG_STD:-0}")
if [[ -n "${SNOWFLAKE_KL_RESUME:-}" ]]; then ARGS+=(--resume-from "$SNOWFLAKE_KL_RESUME"); fi
if [[ "${SNOWFLAKE_C6_PROCESS:-0}" == "1" ]]; then ARGS+=(--c6-process); fi
if [[ -n "${SNOWFLAKE_PPO_ITER:-}" ]]; then ARGS+=(--ppo-iter "$SNOWFLAKE_PPO_ITER"); fi
if [[ "${SNOWFLAKE_SMOKE:-0}" == "1" ]]; then ARGS+=(--smoke --single-seconds 1); fi
rm -rf /tmp/snowflake_kl_runs
python3 -c "import mujoco, gymnasium, torch; print('mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee "$LOG"
echo "kl round: cores ${SNOWFLAKE_CORES:-all} budget ${BUDGET}s runs ${SNOWFLAKE_KL_RUNS:-default}" | tee -a "$LOG"
timeout -k 5 $(( BUDGET + 10 )) "${PIN[@]}" python3 packages/snowflake/benchmarks/kl_runs.py \
  "${ARGS[@]}" 2>&1 | tee -a "$LOG"
rc=$?
echo "snowflake kl round exit $rc; files:" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
exit $rc
