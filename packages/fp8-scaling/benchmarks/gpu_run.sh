#!/usr/bin/env bash
# Reproduces the H200 run of fp8-scaling: correctness first, then timings, then convergence.
# From the repository root, with $OUT an empty folder:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) OUT=/tmp/out \
#     bash packages/fp8-scaling/benchmarks/gpu_run.sh
# FP8_STAGES (default "tests,tune,cases,gpt") picks stages ("bench" = the whole harness run in one
# go); FP8_GPT_STEPS scales the convergence run (2000 in the specification; 300 by default).
# torchao (the side-by-side baseline) and jsonschema (needed by the harness) are installed from
# .whl/fp8/*.whl when present. Writes at most 6 flat files to $OUT.
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
export PYTHONUNBUFFERED=1
if ls .whl/fp8/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/fp8/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
STAGES=${FP8_STAGES:-tests,tune,cases,gpt}
DEV=cuda
GPT_ARGS="--layers 12 --d-model 768 --heads 12 --seq-len 256 --batch 16 --lr 6e-4"
if [[ -n ${FP8_SMOKE:-} ]]; then  # CPU smoke test of this script on tiny sizes
  DEV=cpu; STAGES=${FP8_STAGES:-tests,cases,gpt}; export FP8_BENCH_SHAPES=64x64x128
  FP8_CASES=${FP8_CASES:-linear_fp8_vs_bf16}; FP8_GPT_STEPS=${FP8_GPT_STEPS:-3}
  GPT_ARGS="--layers 1 --d-model 16 --heads 2 --seq-len 16 --batch 2 --bytes 20000"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
if [[ $STAGES == *tests* ]]; then
  timeout ${FP8_TEST_TIMEOUT:-60} python3 -m pytest -q -x -m gpu \
    packages/fp8-scaling/tests/test_fp8_scaling_gpu.py 2>&1 | tail -15 | tee "$OUT/gpu_tests.log"
fi
if [[ $STAGES == *tune* ]]; then
  timeout 60 python3 packages/fp8-scaling/benchmarks/tune_cast.py --out "$OUT/tune_cast.json" 2>&1 | tail -10
fi
if [[ $STAGES == *cases* ]]; then  # the main cases one by one, results written after each
  timeout ${FP8_BENCH_TIMEOUT:-200} python3 packages/fp8-scaling/benchmarks/run_cases.py "$OUT" \
    ${FP8_CASES:-linear_fp8_vs_bf16,cast_transpose_jit,linear_fp8_vs_torchao_tensorwise,auto_filter_vs_bf16,linear_fp8_vs_torchao_rowwise,delayed_cast,torchao_tensorwise_vs_bf16,scaled_mm_vs_bf16_mm} $DEV 2>&1 | grep -v "^\s*$" | tail -40
fi
if [[ $STAGES == *bench* ]]; then
  timeout ${FP8_BENCH_TIMEOUT:-170} python3 -m monobench run --package fp8-scaling --device cuda \
    --out "$OUT" ${FP8_BENCH_ARGS:-} 2>&1 | grep -v "^\s*$" | tail -40
fi
if [[ $STAGES == *gpt* ]]; then
  timeout ${FP8_GPT_TIMEOUT:-240} python3 -m fp8_scaling.train_demo --device $DEV $GPT_ARGS --steps "${FP8_GPT_STEPS:-300}" \
    --val-every 50 --record-every 25 --recipes "${FP8_GPT_RECIPES:-bf16,jit,delayed,constant}" \
    --inference --out /tmp/fp8_gpt 2>&1 | tail -8
  cp /tmp/fp8_gpt/losses.json "$OUT/gpt_losses.json"
  cp /tmp/fp8_gpt/loss_curves.png "$OUT/gpt_loss_curves.png"
  python3 - <<'PY'
import json, os
d = json.load(open(os.environ["OUT"] + "/gpt_losses.json"))
for k, v in d["runs"].items():
    print(f"{k:>9}: val {v['final_val_loss']:.4f} train {v['final_train_loss']:.4f} "
          f"gap {100 * v.get('rel_gap_vs_hp', float('nan')):+.2f} %  finite {v['finite']}  "
          f"inference val {v.get('inference_val_loss', '-')}")
PY
fi
ls -la "$OUT"
