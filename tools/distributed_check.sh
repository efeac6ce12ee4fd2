#!/usr/bin/env bash
# Distributed training check of u-mup and fp8-scaling on 2 CUDA GPUs (NCCL) or 2 CPU processes
# (gloo). Runs the pytest checks, then the workers once more to keep their JSON records.
#
#   bash tools/distributed_check.sh            # NCCL on 2 GPUs (needs torch with CUDA, 2 devices)
#   BACKEND=gloo bash tools/distributed_check.sh
#
# Without uv (e.g. a GPU box with torch preinstalled) set PYTHONPATH to the package sources:
#   PYTHONPATH=$(ls -d packages/*/src | paste -sd:) bash tools/distributed_check.sh
# Results (JSON records and the pytest log) go to $OUT (default: dist_results/).
set -euo pipefail
BACKEND="${BACKEND:-nccl}"
OUT="${OUT:-dist_results}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT/u-mup" "$OUT/fp8-scaling"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
if [[ "$BACKEND" == "nccl" ]]; then MARK="gpu"; else MARK="not gpu"; fi
"$PY" -m pytest -p no:cacheprovider -m "$MARK" -rA -v \
    packages/u-mup/tests/distributed packages/fp8-scaling/tests/distributed 2>&1 \
    | tee "$OUT/pytest_${BACKEND}.log"
RUN=("$PY" -m torch.distributed.run --standalone --nproc-per-node 2)
UW=packages/u-mup/tests/distributed/umup_dist_worker.py
FW=packages/fp8-scaling/tests/distributed/fp8_dist_worker.py
for dtype in fp32 bf16; do
  [[ "$BACKEND" == "gloo" && "$dtype" == "bf16" ]] && continue
  "$PY" "$UW" --modes single --backend "$BACKEND" --dtype "$dtype" --out "$OUT/u-mup"
  "${RUN[@]}" "$UW" --modes ddp,fsdp2 --backend "$BACKEND" --dtype "$dtype" \
      --out "$OUT/u-mup" --ckpt "$OUT/ckpt_$dtype"
done
"$PY" "$FW" --mode single --backend "$BACKEND" --out "$OUT/fp8-scaling"
"${RUN[@]}" "$FW" --mode fsdp2 --backend "$BACKEND" --out "$OUT/fp8-scaling"
rm -rf "$OUT"/ckpt_*
"$PY" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(out.rglob("*.json")):
    r = json.loads(f.read_text())
    l = r["losses"]
    print(f"{f.relative_to(out)}: world {r['world_size']} {r.get('device', r.get('backend'))} "
          f"loss {l[0]:.4f} -> {l[-1]:.4f}")
PY
