#!/usr/bin/env bash
# Distributed training check of u-mup and fp8-scaling on 2 CUDA GPUs (NCCL) or 2 CPU processes
# (gloo): the pytest checks of packages/{u-mup,fp8-scaling}/tests/distributed, which also keep
# their run records (loss curves, per-parameter LR/WD, roles, amax agreement) as JSON.
#
#   bash tools/distributed_check.sh            # NCCL on 2 GPUs (needs torch with CUDA, 2 devices)
#   BACKEND=gloo bash tools/distributed_check.sh
#
# Without uv (e.g. a GPU box with torch preinstalled) set PYTHONPATH to the package sources:
#   PYTHONPATH=$(ls -d packages/*/src | paste -sd:) bash tools/distributed_check.sh
# Results (one folder of JSON records per package and backend, and the pytest log) go to $OUT
# (default: dist_results/).
set -euo pipefail
BACKEND="${BACKEND:-nccl}"
OUT="${OUT:-dist_results}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 DIST_RESULTS_DIR="$OUT"
if [[ "$BACKEND" == "nccl" ]]; then MARK="gpu"; else MARK="not gpu"; fi
"$PY" -m pytest -p no:cacheprovider -m "$MARK" -rA -v \
    packages/u-mup/tests/distributed packages/fp8-scaling/tests/distributed 2>&1 \
    | tee "$OUT/pytest_${BACKEND}.log"
"$PY" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(out.rglob("*.json")):
    r = json.loads(f.read_text())
    l = r["losses"]
    print(f"{f.relative_to(out)}: world {r['world_size']} {r.get('device', r.get('backend'))} "
          f"loss {l[0]:.4f} -> {l[-1]:.4f}")
PY
