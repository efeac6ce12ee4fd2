python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/snowflake/*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
# snowflake GPU-machine benchmark (16 cores + 1 GPU), budget <= 240 s wall.
# Run from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) bash packages/snowflake/benchmarks/gpu_run.sh
# Smoke test on a CPU box (tiny sizes): SNOWFLAKE_SMOKE=1 OUT=/tmp/sfout bash packages/snowflake/benchmarks/gpu_run.sh
set -euo pipefail
export PYTHONPATH="packages/snowflake/src:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/snowflake_gpu_out}"
mkdir -p "$OUT"
ARGS=()
if [[ "${SNOWFLAKE_SMOKE:-0}" == "1" || "${1:-}" == "--smoke" ]]; then ARGS+=(--smoke); fi
rm -rf /tmp/snowflake_gpu_runs
python3 -c "import mujoco, gymnasium, torch; print('mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__, 'torch', torch.__version__)"
timeout "${SNOWFLAKE_TIMEOUT:-220}" python3 packages/snowflake/benchmarks/gpu_bench.py --out "$OUT" "${ARGS[@]}" 2>&1 | tee "$OUT/snowflake_gpu_log.txt"
