# u-mup GPU phase B (one H200, 8 CPU cores, wall budget <= 330 s):
#   1. defaults near-optimal: u-μP width 256, 4 layers, 1500 AdamW steps of 16x128 tokens, bf16,
#      seeds 0,1,2: η sweep (2^-4..2^4), then each of the five α's alone at the best η over
#      2^-3..2^3, then the combination of the per-α argmins (each stage one stacked model);
#      timeout 180 s (UMUP_B_TIMEOUT), JSON rewritten after the η stage and after every α;
#      UMUP_B_LR=0.5 skips the η stage (2^-1 was the optimum at width 256 on the H200),
#      UMUP_B_SEEDS=0,1 / UMUP_B_STEPS shrink it further; UMUP_B_BATCH / UMUP_B_SEQ set the batch
#      (default 16 x 128 tokens), UMUP_B_LR_EXP the η grid (LO:HI, default -4:4); UMUP_B_ALPHAS (comma-separated
#      names) and UMUP_B_ALPHA_EXP (log2 grid LO:HI, default -3:3) pick the α sweep;
#      UMUP_B_COMBINE=a.json,b.json merges runs of disjoint α sets (e.g. one per GPU) and
#      trains only the combination of their argmins;
#   2. with the time left (>= 60 s), the compiled training-step benchmark u-μP vs SP via monobench
#      at the widths not measured yet (UMUP_BENCH_WIDTHS, default 1024,4096; 4 layers, 8x1024 tokens).
# Outputs in $OUT: alpha_defaults_gpu.json/.png, umup_b_log.txt, monobench JSON/MD (u-mup_<date>_*).
# Run from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) bash packages/u-mup/benchmarks/gpu_run_b.sh
# Smoke test on a CPU box: UMUP_SMOKE=1 OUT=/tmp/umup_b bash packages/u-mup/benchmarks/gpu_run_b.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8 MKL_NUM_THREADS=8
OUT="${OUT:-/tmp/umup_gpu_b_out}"
mkdir -p "$OUT"
SMOKE=()
if [[ "${UMUP_SMOKE:-0}" == "1" || "${1:-}" == "--smoke" ]]; then SMOKE=(--smoke); fi
T0=$SECONDS
BUDGET=${UMUP_B_BUDGET:-320}
{
python3 -c "import torch, u_mup; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout -k 5 "${UMUP_B_TIMEOUT:-180}" python3 -c "
import sys, torch; torch.set_num_threads(8)
sys.argv = ['gpu_alpha_defaults.py', '--out', '$OUT'] + sys.argv[1:]
import runpy; runpy.run_path('packages/u-mup/experiments/gpu_alpha_defaults.py', run_name='__main__')
" "${SMOKE[@]}"
echo "alpha study exit status $? after $((SECONDS - T0)) s"
LEFT=$((BUDGET - (SECONDS - T0)))
if [[ ${#SMOKE[@]} -gt 0 ]]; then
  UMUP_BENCH_WIDTHS=64 timeout 200 python3 -m monobench run --package u-mup --device cpu --quick \
      --out "$OUT" 2>&1 | tail -n 12
elif [[ $LEFT -ge 60 ]]; then
  echo "benchmark with ${LEFT} s left"
  UMUP_BENCH_WIDTHS="${UMUP_BENCH_WIDTHS:-1024,4096}" timeout -k 5 "$LEFT" python3 -m monobench run \
      --package u-mup --device cuda --out "$OUT" 2>&1 | tail -n 12
else
  echo "benchmark skipped: only ${LEFT} s left"
fi
echo "phase B done after $((SECONDS - T0)) s"
} 2>&1 | tee "$OUT/umup_b_log.txt"
echo "== u-mup phase B summary =="
ls -la "$OUT"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
f = pathlib.Path(sys.argv[1]) / "alpha_defaults_gpu.json"
if f.exists():
    r = json.loads(f.read_text())
    print(f"alpha study ({r['device']}, {r['wall_s']:.0f} s): best lr {r.get('eta', {}).get('best_lr')}")
    for n, g in r.get("default_gap", {}).items():
        pg = (r.get("default_gap_paired") or {}).get(n) or {}
        pse = f", paired {100 * pg['mean']:+.2f} ± {100 * pg['se']:.2f} %" if pg else ""
        print(f"  {n:>22}: alpha=1 gap {100 * g:+.2f} % (best {r['best_alphas'][n]}{pse})")
    if "improvement" in r:
        print(f"  combined {r['combined_alphas']}: improvement {100 * r['improvement']:+.2f} %")
else:
    print("no alpha_defaults_gpu.json written")
PY
