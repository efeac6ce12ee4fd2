# u-mup GPU phase A (one H200, 8 CPU cores, wall budget <= 540 s): the LR-transfer experiment.
#   widths 128, 256, 512, 1024; 4 layers; 1500 AdamW steps of 16x128 tokens (stdlib bytes, bf16
#   autocast); 9-point log2 LR grids (u-μP 2^-4..2^4, SP 2^-14..2^-6); seeds 0,1. Each
#   (width, parametrization) grid x seeds is trained as ONE stacked model (u_mup._batched), which
#   is first checked equal to separate train_run's on the GPU (fp32). Results are rewritten after
#   every group; no group starts that cannot finish within UMUP_GPU_BUDGET (470 s).
# Outputs in $OUT: lr_transfer_gpu.json, lr_transfer_gpu.png, umup_gpu_log.txt.
# Run from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) bash packages/u-mup/benchmarks/gpu_run.sh
# Smoke test on a CPU box: UMUP_SMOKE=1 OUT=/tmp/umup_gpu bash packages/u-mup/benchmarks/gpu_run.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8 MKL_NUM_THREADS=8
OUT="${OUT:-/tmp/umup_gpu_out}"
mkdir -p "$OUT"
SMOKE=()
if [[ "${UMUP_SMOKE:-0}" == "1" || "${1:-}" == "--smoke" ]]; then SMOKE=(--smoke); fi
T0=$SECONDS
{
python3 -c "import torch, u_mup; torch.set_num_threads(8); print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
timeout -k 5 "${UMUP_EXP_TIMEOUT:-520}" python3 -c "
import sys, torch; torch.set_num_threads(8)
sys.argv = ['gpu_lr_transfer.py', '--out', '$OUT'] + sys.argv[1:]
import runpy; runpy.run_path('packages/u-mup/experiments/gpu_lr_transfer.py', run_name='__main__')
" "${SMOKE[@]}"
echo "exit status $? after $((SECONDS - T0)) s"
} 2>&1 | tee "$OUT/umup_gpu_log.txt"
echo "== u-mup phase A summary =="
ls -la "$OUT"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
f = pathlib.Path(sys.argv[1]) / "lr_transfer_gpu.json"
if f.exists():
    r = json.loads(f.read_text())
    print(f"LR transfer ({r['device']}, {r['wall_s']:.0f} s, {len(r['records'])} runs, missing {r['missing']})")
    for kind, s in r["summary"].items():
        for p, v in s.items():
            print(f"  [{kind}] {p:>4} shift {v['argmin_shift_steps']:+d} best {v['best_lr']} monotone {v['loss_monotone_in_width']}")
else:
    print("no lr_transfer_gpu.json written")
PY
