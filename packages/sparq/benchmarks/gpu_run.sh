#!/usr/bin/env bash
# SparQ kernels on one H200: correctness first (GPU tests), then the benchmark harness (K1-K4 and
# the end-to-end decode), then per-stage timings of launch variants. Results go flat into $OUT.
# Run from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) bash packages/sparq/benchmarks/gpu_run.sh
# SMOKE=1 runs tiny shapes (CPU: also set TRITON_INTERPRET=1 and DEVICE=cpu).
set -u
OUT=${OUT:-/tmp/sparq_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
# the harness validates its JSON with jsonschema; install carried wheels when it is missing
if ! python3 -c "import jsonschema" 2>/dev/null && [ -d .sparq_whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/sparq_site .sparq_whl/*.whl \
    && export PYTHONPATH=/tmp/sparq_site:${PYTHONPATH:-}
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>/dev/null | tee "$OUT/env.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/env.txt"
if [ "${SMOKE:-0}" = "1" ]; then
  timeout 300 python3 -m monobench run --package sparq --device "$DEVICE" --quick --out "$OUT"
  exit $?
fi
# 1) correctness on the GPU (shape grid incl. S >= 64k, ragged batches, CUDA-graph capture)
timeout ${T_TEST:-80} python3 -m pytest -q -x -p no:cacheprovider \
  packages/sparq/tests/test_sparq_kernel.py packages/sparq/tests/test_sparq_kernel_gpu.py \
  2>&1 | tail -25 | tee "$OUT/gpu_tests.txt"
# 2) the benchmark harness: K1-K4 vs dense, end-to-end decode
timeout ${T_BENCH:-120} python3 -m monobench run --package sparq --device cuda --out "$OUT" \
  > "$OUT/bench_log.txt" 2>&1
tail -30 "$OUT/bench_log.txt"
# 3) per-stage timings of launch variants (tuning data)
if [ "${TUNE:-1}" = "1" ]; then
  timeout ${T_TUNE:-60} python3 packages/sparq/benchmarks/tune_sparq.py "$OUT/tune.json" 2>&1 | tail -8
fi
python3 - "$OUT" <<'PY'
import glob, json, sys
for p in glob.glob(sys.argv[1] + "/sparq_*.json"):
    for r in json.load(open(p))["results"]:
        e = r.get("extra", {})
        print(f"{r['id'][:60]:60s} {r['status']:5s} speedup={r.get('speedup') or 0:.2f}x "
              f"roof={r.get('roofline_fraction') or 0:.2f} cand={r.get('candidate', {}).get('median_s', 0)*1e3:.3f}ms "
              f"base={r.get('baseline', {}).get('median_s', 0)*1e3:.3f}ms {r.get('error') or ''}")
PY
