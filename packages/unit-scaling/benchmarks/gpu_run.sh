#!/usr/bin/env bash
# GPU run for unit-scaling: one H200, 8 CPU threads, <= 170 s wall including compilation.
# Usage (from the repository root):
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) CUDA_VISIBLE_DEVICES=0 OUT=/tmp/out \
#     bash packages/unit-scaling/benchmarks/gpu_run.sh
# Smoke test on a CPU-only machine: SMOKE=1 OUT=/tmp/out bash packages/unit-scaling/benchmarks/gpu_run.sh
# Writes (flat in $OUT): unit_scaling_gpu_run.log, unit_scaling_gpu_tests.txt,
#   unit-scaling_<date>_<device>.json/.md (all benchmark cases that finished, merged),
#   unit_scaling_kernels.json (inductor kernel counts of one layer, unit-scaled vs plain).
# Order: GPU tests, then the compiled training step at widths 512, 1024, 2048 (the <= 3 % goal),
# kernel counts at width 512, the eager step at the same widths, then compiled width 4096; each benchmark run is one process
# with a timeout, and no new run starts once fewer than 25 s of the budget are left.
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
mkdir -p "$OUT"
PY=${PYTHON:-python}
HERE="$(cd "$(dirname "$0")" && pwd)"
BUDGET=${UNIT_SCALING_GPU_BUDGET_S:-170}
START=$(date +%s)
export OMP_NUM_THREADS=8 MKL_NUM_THREADS=8 TORCHINDUCTOR_COMPILE_THREADS=8
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-${TMPDIR:-/tmp}/inductor-unit-scaling}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/unit-scaling-bench.XXXXXX")"
LOG="$OUT/unit_scaling_gpu_run.log"
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

{
echo "== unit-scaling GPU run, budget ${BUDGET} s, $(date -u +%FT%TZ) =="
if [ "${SMOKE:-0}" = "1" ]; then
  DEVICE=cpu
  RUNS=("eager_cpu 64" "kernels 64")
  export UNIT_SCALING_BENCH_SMOKE=1
  EXTRA=(--repeats 2 --warmup 1)
else
  DEVICE=cuda
  RUNS=("compiled 512" "compiled 1024" "compiled 2048" "kernels 512" "eager 512" "eager 1024"
        "eager 2048" "compiled 4096")
  EXTRA=()
fi

echo "== 1/2 correctness: GPU tests (float8 formats bit-exact on CUDA; unit scale on CUDA) =="
timeout -k 5 60 "$PY" -m pytest -m gpu "$HERE/.." -q -p no:cacheprovider \
  > "$OUT/unit_scaling_gpu_tests.txt" 2>&1
echo "GPU tests exit code: $? (0 = all passed; 5 = none selected; 124 = timed out)"
tail -3 "$OUT/unit_scaling_gpu_tests.txt"

echo "== 2/2 benchmark: decoder training step, unit-scaled vs plain torch =="
i=0
for spec in "${RUNS[@]}"; do
  read -r mode width <<< "$spec"
  remaining=$(left)
  if [ "$remaining" -lt 25 ]; then
    echo "skip $mode width $width: only ${remaining} s of the budget left"
    continue
  fi
  i=$((i + 1))
  echo "-- $mode width $width (timeout $((remaining - 5)) s)"
  if [ "$mode" = kernels ]; then  # inductor kernel counts of one layer, fwd+bwd, bf16
    timeout -k 5 $((remaining - 5)) "$PY" "$HERE/kernel_count.py" --device "$DEVICE" \
      --width "$width" --out "$OUT/unit_scaling_kernels.json" 2>&1 | grep -E "^(unit|torch)" || true
    continue
  fi
  UNIT_SCALING_BENCH_WIDTHS=$width timeout -k 5 $((remaining - 5)) "$PY" -m monobench run \
    --package unit-scaling --device "$DEVICE" --case "decoder_train_step_$mode" \
    ${EXTRA[@]+"${EXTRA[@]}"} --out "$TMP/run$i" 2>&1 | grep -E "^\| decoder|wrote|rror" || true
done

echo "== summary =="
"$PY" - "$TMP" "$OUT" <<'PYEOF'
import json, pathlib, sys
from monobench._runner import write_run
tmp, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
runs = [json.loads(f.read_text()) for f in sorted(tmp.glob("run*/*.json"), key=lambda p: int(p.parent.name[3:]))]
if not runs:
    print("no benchmark finished"); sys.exit(0)
merged = dict(runs[0]); merged["results"] = [r for run in runs for r in run["results"]]
jp, mp = write_run(merged, out)
print(f"wrote {jp.name} and {mp.name}")
print(f"{'case':62s} {'ours':>9s} {'torch':>9s} {'slowdown':>9s}")
for r in merged["results"]:
    if r["status"] != "ok":
        print(f"{r['id']:62s} ERROR {str(r['error'])[:200]}"); continue
    c, b = r["candidate"]["median_s"], r["baseline"]["median_s"]
    print(f"{r['id']:62s} {c*1e3:7.2f}ms {b*1e3:7.2f}ms {100*(c/b-1):+8.1f}%")
PYEOF
echo "total wall: $(( $(date +%s) - START )) s"
} 2>&1 | tee "$LOG"
rm -rf "$TMP"
