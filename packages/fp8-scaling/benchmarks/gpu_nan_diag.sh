#!/usr/bin/env bash
# One short GPU run locating the first non-finite value of FP8 GPT training (<= 120 s wall).
# From the repository root, with $OUT an empty folder (writes diag.log and diag.json there):
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) OUT=/tmp/out \
#     bash packages/fp8-scaling/benchmarks/gpu_nan_diag.sh
# FP8_DIAG_DEVICE=cpu runs the same stages on tiny sizes on the CPU (checks the script itself).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} TORCHINDUCTOR_COMPILE_THREADS=8
export FP8_DIAG_BUDGET=${FP8_DIAG_BUDGET:-100}
exec > >(tee -a "$OUT/diag.log") 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
timeout -k 5 112 python3 packages/fp8-scaling/benchmarks/gpu_nan_diag.py "$OUT" \
  "${FP8_DIAG_DEVICE:-cuda}" 2>&1 | grep -v "^\s*$"
echo "== exit $?"
ls -la "$OUT"
