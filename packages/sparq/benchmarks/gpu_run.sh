#!/usr/bin/env bash
# SparQ kernels on one H200: correctness first (GPU tests; each benchmark case also checks its
# output against the fp32 reference before timing), then the harness cases (K1-K4, end-to-end
# decode) in one process, each written as soon as it finishes. Results go flat into $OUT
# (env.txt, gpu_tests.txt, <case>_sparq_<date>_<gpu>.{json,md}); expected wall time 3-5 min.
# Run from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) bash packages/sparq/benchmarks/gpu_run.sh
# SMOKE=1 runs tiny shapes (on CPU also set TRITON_INTERPRET=1 DEVICE=cpu); TESTS=0 skips pytest;
# TUNE=1 adds per-stage timings of launch variants (tune.json).
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
if [ "${TESTS:-1}" = "1" ] && [ "${SMOKE:-0}" != "1" ]; then
  timeout ${T_TEST:-80} python3 -m pytest -q -x -p no:cacheprovider \
    packages/sparq/tests/test_sparq_kernel.py packages/sparq/tests/test_sparq_kernel_gpu.py \
    2>&1 | tail -25 | tee "$OUT/gpu_tests.txt"
fi
timeout ${T_BENCH:-240} python3 - "$OUT" "$DEVICE" "${SMOKE:-0}" <<'PY'
import sys
from pathlib import Path

from monobench._runner import find_root, run_package, write_run

out, device, smoke = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
root = find_root()
for case in ("sparq_decode", "sparq_e2e_decode"):
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
if [ "${TUNE:-0}" = "1" ]; then
  timeout ${T_TUNE:-60} python3 packages/sparq/benchmarks/tune_sparq.py "$OUT/tune.json" 2>&1 | tail -8
fi
