#!/usr/bin/env bash
# snowflake: PPO iteration overhead over pure stepping on 16 cores + one GPU, <= SNOWFLAKE_BUDGET s
# (default 290): GPU tests (not slow), PPO iterations vs stepping (SNOWFLAKE_PLAN, see
# iter_overhead.py), the per-step policy path (SNOWFLAKE_POLICY_PATH=0 skips it), then the PPO
# update alone by variant (SNOWFLAKE_UPDATE=0 skips it). Pinned to SNOWFLAKE_CORES (default
# 8-23), GPU SNOWFLAKE_GPU (default 1; CUDA_VISIBLE_DEVICES is set to it). $OUT gets <= 6 files:
#   iter_log.txt, iter_overhead.json/.md (iteration vs stepping per configuration),
#   policy_path.json (per-step policy path piece by piece, kernels of one policy call),
#   update_snowflake.json, update_mlp.json (update alone: foreach Adam / fused / compiled / TF32).
# Run from the repository root with mujoco + gymnasium importable:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:):/tmp/site OUT=<dir> bash packages/snowflake/benchmarks/gpu_run_iter.sh
# Smoke test on a small CPU box: SNOWFLAKE_SMOKE=1 OUT=/tmp/sfi bash packages/snowflake/benchmarks/gpu_run_iter.sh
set -uo pipefail
T0=$(date +%s)
OUT="${OUT:-/tmp/snowflake_out_iter}"
mkdir -p "$OUT"
LOG="$OUT/iter_log.txt"
BUDGET="${SNOWFLAKE_BUDGET:-290}"
CORES="${SNOWFLAKE_CORES:-8-23}"
export CUDA_VISIBLE_DEVICES="${SNOWFLAKE_GPU:-${CUDA_VISIBLE_DEVICES:-1}}"
export PYTHONPATH="packages/snowflake/src:packages/snowflake/benchmarks:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if ! python3 -c "import mujoco, gymnasium" 2>/dev/null && ls .whl/snowflake/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/snowflake/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
N=$(nproc --all)
if [[ "$N" -lt 16 ]]; then CORES="0-$(( N - 1 ))"; fi  # small box (smoke test)
PIN=(taskset -c "$CORES")
"${PIN[@]}" true 2>/dev/null || PIN=()
SMOKE=(); UPD=(); PLAN=()
if [[ "${SNOWFLAKE_SMOKE:-0}" == "1" ]]; then
  SMOKE=(--smoke); UPD=(--env Centipede-6 --rollout-steps 128 --minibatch 32 --epochs 2 --reps 1)
  PLAN=(--plan "snowflake:process:1,snowflake:process:1:sync,mlp:thread:1")
fi
if [[ -n "${SNOWFLAKE_PLAN:-}" ]]; then PLAN=(--plan "$SNOWFLAKE_PLAN"); fi
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
{
  python3 -c "import mujoco, gymnasium, torch; print('mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "cores $CORES (nproc $N), GPU $CUDA_VISIBLE_DEVICES, budget ${BUDGET}s, commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
} 2>&1 | tee "$LOG"
# 0. correctness on the GPU: graphed update and rollout policy vs eager, GNN schedules; with
# SNOWFLAKE_GPU_TESTS=gpu also the compiled / split-stream update vs eager (<= 40 / 90 s);
# SNOWFLAKE_GPU_TESTS=none skips them
GT="${SNOWFLAKE_GPU_TESTS:-gpu and not slow}"
if [[ "$GT" != "none" ]] && python3 -c "import torch, pytest, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "== gpu tests ($GT)" | tee -a "$LOG"
  timeout -k 5 $([[ "$GT" == "gpu" ]] && echo 90 || echo 40) "${PIN[@]}" python3 -m pytest -q \
    -p no:cacheprovider --show-capture=no --tb=short -m "$GT" \
    packages/snowflake/tests/test_snowflake_graphs.py 2>&1 | grep -v "DEBUG" | tail -30 \
    | tee -a "$LOG"
fi
# 1. PPO iteration vs stepping (the criterion), SNOWFLAKE_ITER_PCT (default 60) % of the budget,
# SNOWFLAKE_ITERS iterations per case (default 4; the first is not counted)
IT=$(( $(left) * ${SNOWFLAKE_ITER_PCT:-60} / 100 ))
echo "== PPO iteration vs pure stepping (budget ${IT}s)" | tee -a "$LOG"
timeout -k 5 $(( IT + 20 )) "${PIN[@]}" python3 packages/snowflake/benchmarks/iter_overhead.py \
  "${SMOKE[@]}" "${PLAN[@]}" --iters "${SNOWFLAKE_ITERS:-4}" --budget "$IT" --json "$OUT/iter_overhead.json" \
  --md "$OUT/iter_overhead.md" 2>&1 | grep -v "^|" | tee -a "$LOG"
rc=$?
# 2. the per-step policy path piece by piece and the kernels of one policy call (<= 70 s)
L=$(left)
if [[ "${SNOWFLAKE_POLICY_PATH:-1}" == "1" && "$L" -gt 45 ]]; then
  echo "== per-step policy path (budget $(( L < 80 ? L - 10 : 70 ))s)" | tee -a "$LOG"
  PP=(); [[ "${SNOWFLAKE_SMOKE:-0}" == "1" ]] && PP=(--smoke --warm 1 --reps 20)
  timeout -k 5 $(( L < 80 ? L - 10 : 70 )) "${PIN[@]}" python3 \
    packages/snowflake/benchmarks/policy_path.py "${PP[@]}" --json "$OUT/policy_path.json" 2>&1 \
    | grep -v "^ *warnings.warn\|UserWarning" | tee -a "$LOG"
fi
# 3. the update alone by variant (GNN first; compile last: it compiles for tens of seconds)
L=$(left)
if [[ "${SNOWFLAKE_UPDATE:-1}" == "1" && "$L" -gt 20 ]]; then
  echo "== update alone, snowflake (budget $(( L - 12 ))s)" | tee -a "$LOG"
  timeout -k 5 $(( L - 12 )) "${PIN[@]}" python3 packages/snowflake/benchmarks/update_bench.py \
    "${UPD[@]}" --policy snowflake --profile \
    --variants "${SNOWFLAKE_UPDATE_VARIANTS:-foreach,fused,streams,compile+streams,tf32,compile}" \
    --json "$OUT/update_snowflake.json" 2>&1 | tee -a "$LOG"
fi
L=$(left)
if [[ "${SNOWFLAKE_UPDATE:-1}" == "1" && "$L" -gt 12 ]]; then
  echo "== update alone, mlp" | tee -a "$LOG"
  timeout -k 5 $(( L - 2 )) "${PIN[@]}" python3 packages/snowflake/benchmarks/update_bench.py \
    "${UPD[@]}" --policy mlp --variants foreach,fused --json "$OUT/update_mlp.json" 2>&1 | tee -a "$LOG"
fi
echo "== summary ($(( $(date +%s) - T0 ))s)" | tee -a "$LOG"
[[ -f "$OUT/iter_overhead.md" ]] && grep "^| " "$OUT/iter_overhead.md" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
exit $rc
