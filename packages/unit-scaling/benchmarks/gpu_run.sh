#!/usr/bin/env bash
# GPU run for unit-scaling: one H200, 4 CPU threads, <= 150 s wall including compilation.
# Usage (from the repository root):
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) CUDA_VISIBLE_DEVICES=0 OUT=/tmp/out \
#     bash packages/unit-scaling/benchmarks/gpu_run.sh
# Smoke test on a CPU-only machine: SMOKE=1 OUT=/tmp/out bash packages/unit-scaling/benchmarks/gpu_run.sh
# Knobs: UNIT_SCALING_GPU_BUDGET_S (default 150), UNIT_SCALING_GPU_THREADS (CPU threads, default
#   4; 1 with SMOKE=1), UNIT_SCALING_GPU_TESTS=1 (also run the GPU pytest stage first, ~20 s;
#   off by default).
# Writes (flat in $OUT, at most 4 files): unit_scaling_gpu_run.log,
#   unit-scaling_<date>_<device>.json/.md (all benchmark cases that finished, merged),
#   unit_scaling_profile_512.json (host vs device profile of both training steps at width 512),
#   [unit_scaling_gpu_tests.txt when the tests ran].
# Order: compiled step at width 512 (the failing <= 3 % case, 50 repeats), the width-512
# profile, compiled 1024 and 2048, eager 512, compiled 4096. Each run is one process with a
# timeout; no new run starts once fewer than 25 s of the budget are left. Compiled graphs are
# cached in TORCHINDUCTOR_CACHE_DIR, so the profile reuses the 512 benchmark's compilation.
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
mkdir -p "$OUT"
PY=${PYTHON:-python}
HERE="$(cd "$(dirname "$0")" && pwd)"
BUDGET=${UNIT_SCALING_GPU_BUDGET_S:-150}
START=$(date +%s)
THREADS=${UNIT_SCALING_GPU_THREADS:-4}
[ "${SMOKE:-0}" = "1" ] && THREADS=${UNIT_SCALING_GPU_THREADS:-1}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS TORCHINDUCTOR_COMPILE_THREADS=$THREADS
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-${TMPDIR:-/tmp}/inductor-unit-scaling}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/unit-scaling-bench.XXXXXX")"
LOG="$OUT/unit_scaling_gpu_run.log"
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

{
echo "== unit-scaling GPU run, budget ${BUDGET} s, ${THREADS} CPU threads, $(date -u +%FT%TZ) =="
if [ "${SMOKE:-0}" = "1" ]; then
  DEVICE=cpu
  RUNS=("compiled_cpu 64" "profile 64" "eager_cpu 64")
  export UNIT_SCALING_BENCH_SMOKE=1 UNIT_SCALING_BENCH_REPEATS=2
  PROFILE_ARGS=(--device cpu --width 64 --batch 2 --seq 32 --blocks 2 --per-block 2
                --profile-steps 2)
else
  DEVICE=cuda
  RUNS=("compiled 512" "profile 512" "compiled 1024" "compiled 2048" "eager 512" "compiled 4096")
  PROFILE_ARGS=(--device cuda --width 512 --batch 16 --seq 1024 --blocks 10 --per-block 5
                --profile-steps 5)
fi

if [ "${UNIT_SCALING_GPU_TESTS:-0}" = "1" ]; then
  echo "== correctness: GPU tests (float8 formats bit-exact on CUDA; unit scale on CUDA) =="
  timeout -k 5 40 "$PY" -m pytest -m gpu "$HERE/.." -q -p no:cacheprovider \
    > "$OUT/unit_scaling_gpu_tests.txt" 2>&1
  echo "GPU tests exit code: $? (0 = all passed; 5 = none selected; 124 = timed out)"
  tail -3 "$OUT/unit_scaling_gpu_tests.txt"
fi

echo "== benchmark: decoder training step, unit-scaled vs plain torch (same compiled regions) =="
i=0
for spec in "${RUNS[@]}"; do
  read -r mode width <<< "$spec"
  remaining=$(left)
  if [ "$remaining" -lt 25 ]; then
    echo "skip $mode width $width: only ${remaining} s of the budget left"
    continue
  fi
  i=$((i + 1))
  echo "-- $mode width $width (timeout $((remaining - 5)) s, t=$(( $(date +%s) - START )) s)"
  if [ "$mode" = profile ]; then  # host vs device split of both steps, interleaved timing
    timeout -k 5 $((remaining - 5)) "$PY" "$HERE/profile_step.py" "${PROFILE_ARGS[@]}" \
      --out "$OUT/unit_scaling_profile_${width}.json" 2>&1 \
      | grep -E "^(unit|torch)|rror" || true
    continue
  fi
  UNIT_SCALING_BENCH_WIDTHS=$width timeout -k 5 $((remaining - 5)) "$PY" -m monobench run \
    --package unit-scaling --device "$DEVICE" --case "decoder_train_step_$mode" \
    --out "$TMP/run$i" 2>&1 | grep -E "^\| decoder|rror" || true
done

echo "== summary =="
"$PY" - "$TMP" "$OUT" <<'PYEOF'
import json, pathlib, sys
from monobench._runner import write_run
tmp, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
runs = [json.loads(f.read_text()) for f in sorted(tmp.glob("run*/*.json"), key=lambda p: int(p.parent.name[3:]))]
if runs:
    merged = dict(runs[0]); merged["results"] = [r for run in runs for r in run["results"]]
    jp, mp = write_run(merged, out)
    print(f"wrote {jp.name} and {mp.name}")
    print(f"{'case':62s} {'ours':>9s} {'torch':>9s} {'slowdown':>9s} {'IQR ours/torch':>16s}")
    for r in merged["results"]:
        if r["status"] != "ok":
            print(f"{r['id']:62s} ERROR {str(r['error'])[:200]}"); continue
        c, b = r["candidate"], r["baseline"]
        print(f"{r['id']:62s} {c['median_s']*1e3:7.2f}ms {b['median_s']*1e3:7.2f}ms "
              f"{100*(c['median_s']/b['median_s']-1):+8.1f}% "
              f"{c['iqr_s']*1e3:7.2f}/{b['iqr_s']*1e3:.2f}ms")
else:
    print("no benchmark finished")
for prof in sorted(out.glob("unit_scaling_profile_*.json")):
    d = json.loads(prof.read_text()); diff = d.get("unit_minus_torch", {})
    print(f"{prof.name}: wall gap {diff.get('wall_ms', float('nan')):+.3f} ms, GPU busy gap "
          f"{diff.get('gpu_busy_ms', float('nan')):+.3f} ms, host gap "
          f"{diff.get('host_ms', float('nan')):+.3f} ms, kernels/step gap "
          f"{diff.get('kernels_per_step', float('nan')):+.1f} -> {diff.get('verdict')}")
PYEOF
echo "total wall: $(( $(date +%s) - START )) s"
} 2>&1 | tee "$LOG"
rm -rf "$TMP"
