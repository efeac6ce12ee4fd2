# u-mup GPU run (one H200), wall budget <= 300 s:
#   1. LR-transfer experiment (widths 128..1024, 4 layers, u-μP and SP, 9-point LR grids, 1 seed,
#      1000 steps of 16x256 tokens (UMUP_GPU_STEPS), eager bf16, 14 concurrent worker processes;
#      no new run starts after 140 s (UMUP_GPU_BUDGET), unfinished points are listed as missing),
#   2. compiled training-step benchmark u-μP vs SP via monobench (widths 512..4096, 4 layers,
#      batch 8x1024, bf16; timeout 110 s -- UMUP_BENCH_WIDTHS=512,2048 to shorten).
# Outputs in $OUT: lr_transfer_gpu.json/.png, umup_gpu_log.txt, monobench JSON/MD.
# Run from the repository root:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) bash packages/u-mup/benchmarks/gpu_run.sh
# Smoke test on a CPU box: UMUP_SMOKE=1 OUT=/tmp/umup_gpu bash packages/u-mup/benchmarks/gpu_run.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/umup_gpu_out}"
mkdir -p "$OUT"
SMOKE=()
DEV=cuda
if [[ "${UMUP_SMOKE:-0}" == "1" || "${1:-}" == "--smoke" ]]; then SMOKE=(--smoke); DEV=cpu; fi
python3 -c "import torch, u_mup; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# correctness before timing: export of a trained-shape model reproduces our logits
python3 - <<'PY' || exit 1
import torch
from u_mup.models import build_decoder
m = build_decoder("umup", 64, 2, head_dim=16)
idx = torch.randint(0, 256, (2, 16))
x = m(idx)
assert torch.isfinite(x).all(), "non-finite logits"
try:
    from u_mup.hf import export_to_sp
    d = (export_to_sp(m, seq_len=16)(idx).logits - x).abs().max().item()
    print(f"export_to_sp max abs diff {d:.2e}"); assert d <= 1e-3
except ImportError:
    print("transformers missing: export check skipped")
PY
timeout "${UMUP_EXP_TIMEOUT:-172}" python3 packages/u-mup/experiments/gpu_lr_transfer.py \
    --out "$OUT" "${SMOKE[@]}" 2>&1 | tail -n 40 | tee "$OUT/umup_gpu_log.txt"
if [[ ${#SMOKE[@]} -gt 0 ]]; then
  UMUP_BENCH_WIDTHS=64 timeout 300 python3 -m monobench run --package u-mup --device cpu --quick \
      --out "$OUT" 2>&1 | tail -n 15
else
  timeout "${UMUP_BENCH_TIMEOUT:-110}" python3 -m monobench run --package u-mup --device "$DEV" \
      --out "$OUT" 2>&1 | tail -n 15
fi
echo "== u-mup summary =="
ls -la "$OUT"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
f = out / "lr_transfer_gpu.json"
if f.exists():
    r = json.loads(f.read_text())
    print(f"LR transfer ({r['device']}, {r['wall_s']:.0f} s, missing {len(r['missing'])})")
    for p, s in r["summary"].items():
        print(f"  {p:>4} shift {s['argmin_shift_steps']:+d}  best {s['best_lr']}")
PY
