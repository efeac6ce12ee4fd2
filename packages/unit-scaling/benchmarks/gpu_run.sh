#!/usr/bin/env bash
# GPU run for unit-scaling (one H200, <= 150 s wall including compilation).
# Usage (from the repository root):
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) OUT=/tmp/out \
#     bash packages/unit-scaling/benchmarks/gpu_run.sh
# Smoke test on a CPU-only machine: SMOKE=1 OUT=/tmp/out bash packages/unit-scaling/benchmarks/gpu_run.sh
set -euo pipefail
: "${OUT:?set OUT to an empty output folder}"
mkdir -p "$OUT"
PY=${PYTHON:-python}
HERE="$(cd "$(dirname "$0")" && pwd)"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-${TMPDIR:-/tmp}/inductor-unit-scaling}"

if [ "${SMOKE:-0}" = "1" ]; then
  DEVICE=cpu
  BENCH_ARGS=(--case decoder_train_step_eager_cpu --repeats 2 --warmup 1)
else
  DEVICE=cuda
  BENCH_ARGS=()
fi

echo "== 1/2 correctness: GPU tests (float8 formats bit-exact on CUDA; unit scale on CUDA) =="
set +e
$PY -m pytest -m gpu "$HERE/.." -q --junitxml="$OUT/unit_scaling_gpu_tests.xml" > "$OUT/unit_scaling_gpu_tests.txt" 2>&1
TESTS_RC=$?
set -e
tail -5 "$OUT/unit_scaling_gpu_tests.txt"

echo "== 2/2 benchmark: decoder training step, unit-scaled vs plain torch =="
$PY -m monobench run --package unit-scaling --device "$DEVICE" ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} \
  --out "$OUT" > "$OUT/unit_scaling_bench_stdout.txt" 2>&1 || echo "benchmark exited non-zero"
tail -20 "$OUT/unit_scaling_bench_stdout.txt"

echo "== summary =="
$PY - "$OUT" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(out.glob("unit-scaling_*.json")):
    run = json.loads(f.read_text())
    print(f"{'case':60s} {'ours':>10s} {'torch':>10s} {'slowdown':>9s}")
    for r in run["results"]:
        if r["status"] != "ok":
            print(f"{r['id']:60s} ERROR {r['error']}")
            continue
        c, b = r["candidate"]["median_s"], r["baseline"]["median_s"]
        print(f"{r['id']:60s} {c*1e3:9.2f}ms {b*1e3:9.2f}ms {100*(c/b-1):+8.1f}%")
PYEOF
echo "GPU tests exit code: $TESTS_RC (0 = all passed; 5 = none selected)"
