#!/usr/bin/env bash
# The H200 run of fp8-scaling, in order of priority, within FP8_BUDGET seconds (default 200):
#   gpt:   12-layer d=768 GPT, 2,000 steps, bf16 vs FP8 JIT / delayed / constant, one process
#          per recipe side by side, forward+backward replayed from CUDA graphs; quantize-once
#          inference check on the bf16 model. Writes gpt_losses.json and two PNGs.
#          FP8_GPT_RECIPES picks the recipes (default "bf16 jit delayed constant"),
#          FP8_FAST_ACCUM sets the FP8 recipes' fast_accum (train_demo --fast-accum),
#          FP8_GPT_BIAS_PNG=0 leaves out the bias plot (one file fewer).
#   sweep: correctness, then CUDA-graph timing of every cast-kernel configuration (tile, warps,
#          transposition mode, persistent grid, pipelining) for the 8192^2 cast and the tensor
#          shapes of the layer shapes; writes fp8_tuned.json (fastest per shape, keyed by GPU
#          name) and fp8_sweep.json (all timings) within FP8_SWEEP_SECONDS (default 100). The
#          later stages read that table (FP8_SCALING_TUNED).
#   cases: the acceptance cases first (Float8Linear vs bf16 and vs torchao tensorwise, compiled),
#          then GPU-time (CUDA-graph) cases for the casts and the layer, then variants; JSON + MD
#          rewritten after each case, so a cut run keeps what it measured.
#   profile: host cost of one compiled forward+backward step (benchmarks/profile_host.py) for
#          FP8_PROFILE_KINDS (default ours,ours_perop,torchao_tensorwise,bf16) at
#          FP8_PROFILE_SHAPES (default 4096^3, 8192^3): host seconds per step over 50 un-synced
#          steps, kernel launches per step, top CPU ops, dynamo graph breaks, and the GPU kernel
#          table of one step (name, launches, device µs, share) -> fp8_profile.json (no new
#          kind/shape after FP8_PROFILE_SECONDS, default 75; FP8_PROFILE_ARGS adds options,
#          e.g. --no-py to skip the cProfile pass).
#   interleaved: benchmarks/interleaved.py -- per shape and pair (FP8_IL_PLAN, default: 4096^3
#          ours/bf16, ours/torchao tensorwise, auto_filter/bf16 (per call and with tokens=M),
#          torchao/bf16; 8192^3 and 16384x8192x28672 ours/bf16 and ours/torchao), the compiled
#          steps timed both as CUDA-graph replays and pipelined, interleaved round by round
#          (FP8_IL_ROUNDS rounds at most, FP8_IL_STEPS steps per sample, FP8_IL_SECONDS of
#          timing per shape; FP8_IL_BUDGET s in all, a shape starts only with 35 s of it left)
#          -> fp8_interleaved.json/.md/.png.
#   castbw: benchmarks/cast_bw.py -- the first-pass kernels of the one-pass JIT cast checked
#          byte for byte, then timed (CUDA-graph replay, round-robin) at 8192^2 and 16384x28672,
#          E4M3 and E5M2, next to a torch copy (roofline) and a plain torch cast + transpose;
#          writes fp8_castbw.json with the tuned table (the fastest as "cast_spec") under
#          "tuned_table"; the later stages use that table (FP8_SCALING_TUNED, a copy in /tmp);
#          FP8_CASTBW_SECONDS (default 80) caps it.
#   gemm:  benchmarks/gemm_settings.py -- the layer's three FP8 GEMMs (operands as the layer
#          passes them) at FP8_GEMM_SHAPES (default 8192^3): SQNR vs float64 with and without
#          use_fast_accum, GPU time per use_fast_accum and SM carve-out (FP8_GEMM_CARVEOUTS,
#          default 0,4,8,16), the cuBLAS kernel names, and whether a memory-bound copy on a
#          side stream hides behind a GEMM -> fp8_gemm.json; FP8_GEMM_SECONDS (default 50).
#   tests: the GPU tests (bit-exact casts, CUDA-graph training = eager), if time is left.
# FP8_STAGES picks stages (gpt, sweep, castbw, gemm, interleaved, profile, cases, tests; default gpt,cases,tests; the lean kernel run: profile,cases), FP8_CASES the cases, FP8_BENCH_SHAPES the
# layer shapes (MxKxN,...), FP8_GPT_SECONDS the cap of the GPT stage, FP8_THREADS the CPU threads,
# FP8_ROUNDS how often the case list is repeated (spread per case in fp8_spread.json),
# FP8_REPEATS the timed steps per side and case (default 20).
# From the repository root, with $OUT an empty folder:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) OUT=/tmp/out \
#     bash packages/fp8-scaling/benchmarks/gpu_run.sh
# FP8_SMOKE=1 runs the same stages on the CPU with tiny sizes (checks the script itself).
# Writes flat files to $OUT: run.log, interleaved: fp8_interleaved.json/.md/.png, fp8_cases.json/.md, fp8_spread.json; profile: fp8_profile.json; sweep: fp8_tuned.json,
# fp8_sweep.json; gpt: gpt_losses.json, gpt_loss_curves.png, gpt_bias_distribution.png (run the
# gpt stage on its own to stay within 6 files).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
START=$SECONDS
BUDGET=${FP8_BUDGET:-200}
THREADS=${FP8_THREADS:-4}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=$THREADS TORCHINDUCTOR_COMPILE_THREADS=$THREADS
export FP8_BENCH_SHAPES=${FP8_BENCH_SHAPES:-4096x4096x4096,8192x8192x8192,16384x8192x28672}
export FP8_GRAPH_SHAPES=${FP8_GRAPH_SHAPES:-$FP8_BENCH_SHAPES}
LOG="$OUT/run.log"
left() { echo $((BUDGET - (SECONDS - START))); }
exec > >(tee -a "$LOG") 2>&1
if ls .whl/fp8/*.whl >/dev/null 2>&1 && ! python3 -c "import torchao" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/fp8/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
STAGES=${FP8_STAGES:-gpt,cases,tests}
DEV=cuda
SWEEP_SMOKE=""; SWEEP_ENV=""; PROFILE_ARGS=""
STEPS=${FP8_GPT_STEPS:-2000}
GPT_ARGS="--layers 12 --d-model 768 --heads 12 --seq-len 256 --batch 16 --lr 6e-4 --bytes 3000000"
GPT_CAP=${FP8_GPT_SECONDS:-110}  # wall cap of the convergence stage (training stops earlier)
CASES=${FP8_CASES:-linear_fp8_vs_bf16,linear_fp8_vs_torchao_tensorwise,linear_fp8_vs_bf16_latency,linear_fp8_vs_torchao_tensorwise_latency,auto_filter_vs_bf16,linear_fp8_perop_vs_bf16,linear_fp8_perop_vs_torchao_tensorwise,torchao_tensorwise_vs_bf16,linear_fp8_graph_vs_bf16,linear_fp8_eager_vs_bf16,linear_fp8_triton_ops_vs_bf16,linear_fp8_inductor_vs_bf16,cast_jit_graph,cast_delayed_graph,scaled_mm_vs_bf16_mm,linear_fp8_fast_accum_all_vs_bf16}
if [[ -n ${FP8_SMOKE:-} ]]; then  # CPU smoke test of this script on tiny sizes
  DEV=cpu; export FP8_QUICK=1
  CASES=${FP8_CASES:-linear_fp8_vs_bf16,linear_fp8_vs_bf16_latency,cast_jit_graph,linear_fp8_graph_vs_bf16,linear_fp8_spec_vs_bf16,cast_spec_graph}
  PROFILE_ARGS="--device cpu --shapes 64x64x128 --steps 5 --profile-steps 2"
  SWEEP_SMOKE=--smoke; SWEEP_ENV=TRITON_INTERPRET=1
  export FP8_IL_PLAN=${FP8_IL_PLAN:-64x64x128=ours:bf16+ours_auto:bf16+ours_auto_tokens:bf16}
  FP8_IL_ROUNDS=${FP8_IL_ROUNDS:-3}; FP8_IL_STEPS=${FP8_IL_STEPS:-2}
  STEPS=${FP8_GPT_STEPS:-8}
  GPT_ARGS="--layers 1 --d-model 16 --heads 2 --seq-len 16 --batch 2 --bytes 20000"
  GPT_CAP=${FP8_GPT_SECONDS:-300}
fi
echo "== fp8-scaling GPU run: stages $STAGES, budget ${BUDGET} s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
python3 -c "import torchao; print('torchao', torchao.__version__)" 2>/dev/null || echo "no torchao"

if [[ $STAGES == *gpt* ]]; then
  echo "== gpt: recipes ${FP8_GPT_RECIPES:-bf16 jit delayed constant} side by side, $STEPS steps, cap ${GPT_CAP} s"
  W=/tmp/fp8_gpt_$$; rm -rf "$W"; mkdir -p "$W"
  pids=()
  GPT_RECIPES=${FP8_GPT_RECIPES:-bf16 jit delayed constant}
  for r in $GPT_RECIPES; do
    extra=""; [[ $r == bf16 ]] && extra="--inference"
    [[ -n ${FP8_FAST_ACCUM:-} && $r != bf16 ]] && extra="--fast-accum $FP8_FAST_ACCUM"
    OMP_NUM_THREADS=1 timeout $((GPT_CAP + 5)) python3 -m fp8_scaling.train_demo --device $DEV $GPT_ARGS \
      --steps "$STEPS" --val-every 50 --record-every 100 --recipes $r $extra \
      --max-seconds $((GPT_CAP - 25)) --out "$W/$r" > "$W/$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "a recipe process exited with status $?"; done
  for r in $GPT_RECIPES; do echo "-- $r"; grep -v "^\s*$" "$W/$r.log" | tail -4; done
  python3 -m fp8_scaling.train_demo --merge "$(for r in $GPT_RECIPES; do printf '%s,' "$W/$r"; done)" \
    --out "$W/all" --steps "$STEPS" && {
    cp "$W/all/losses.json" "$OUT/gpt_losses.json"
    cp "$W/all/loss_curves.png" "$OUT/gpt_loss_curves.png"
  }
  [[ -f $W/jit/bias_distribution.png && ${FP8_GPT_BIAS_PNG:-1} != 0 ]] \
    && cp "$W/jit/bias_distribution.png" "$OUT/gpt_bias_distribution.png"
  python3 - "$OUT/gpt_losses.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except OSError:
    sys.exit("no gpt_losses.json")
for k, v in d["runs"].items():
    print(f"{k:>9}: steps {v['steps_done']} mean val (last {v['val_window_steps']}) "
          f"{v['val_window_mean']:.4f} gap {100 * v.get('rel_val_gap_vs_hp', float('nan')):+.2f} %"
          f"  finite {v['finite']}  {v['seconds']:.0f} s  cuda graph {v.get('cuda_graph')}")
b = d["runs"].get("bf16", {})
if "inference_val_loss" in b:
    print(f"inference: quantized val {b['inference_val_loss']:.4f} vs bf16 "
          f"{b['val_loss_same_batches']:.4f} ({100 * b['inference_rel_gap']:+.2f} %), "
          f"weight bytes {b['fp8_weight_bytes_over_bf16']:.3f}x bf16")
PY
fi

if [[ $STAGES == *castbw* ]]; then
  CB=${FP8_CASTBW_SECONDS:-80}; (( CB > $(left) - 10 )) && CB=$(( $(left) - 10 ))
  echo "== castbw ($CB s)"
  if (( CB > 15 )); then
    timeout $((CB + 30)) env $SWEEP_ENV python3 packages/fp8-scaling/benchmarks/cast_bw.py "$OUT" \
      --budget "$CB" ${SWEEP_SMOKE:-} ${FP8_CASTBW_ARGS:-} 2>&1 | grep -v "^\s*$" | tail -120
  fi
  if [[ -s $OUT/fp8_tuned.json ]]; then  # the table is also in fp8_castbw.json ("tuned_table")
    export FP8_SCALING_TUNED=/tmp/fp8_tuned_$$.json
    mv "$OUT/fp8_tuned.json" "$FP8_SCALING_TUNED" && echo "tuned table: $FP8_SCALING_TUNED"
  fi
fi

if [[ $STAGES == *gemm* ]]; then
  GB=${FP8_GEMM_SECONDS:-50}; (( GB > $(left) - 10 )) && GB=$(( $(left) - 10 ))
  echo "== gemm ($GB s)"
  if (( GB > 10 )); then
    GS=${FP8_GEMM_SHAPES:-8192x8192x8192}; [[ $DEV == cpu ]] && GS=64x32x48
    timeout $((GB + 30)) python3 packages/fp8-scaling/benchmarks/gemm_settings.py "$OUT" \
      --device $DEV --budget "$GB" --shapes "$GS" --carveouts "${FP8_GEMM_CARVEOUTS:-0,4,8,16}" \
      2>&1 | grep -v "^\s*$" | tail -80
  fi
fi

if [[ $STAGES == *interleaved* ]]; then
  IB=${FP8_IL_BUDGET:-150}; (( IB > $(left) - 10 )) && IB=$(( $(left) - 10 ))
  echo "== interleaved ($IB s)"
  if (( IB > 10 )); then
    PLAN_ARG=(); [[ -n ${FP8_IL_PLAN:-} ]] && PLAN_ARG=(--plan "$FP8_IL_PLAN")
    timeout $((IB + 20)) python3 packages/fp8-scaling/benchmarks/interleaved.py "$OUT" \
      --device $DEV --budget "$IB" --rounds "${FP8_IL_ROUNDS:-40}" --steps "${FP8_IL_STEPS:-10}" \
      --seconds "${FP8_IL_SECONDS:-15}" "${PLAN_ARG[@]}" 2>&1 | grep -v "^\s*$" | tail -60
  fi
fi

if [[ $STAGES == *sweep* ]]; then
  SW=${FP8_SWEEP_SECONDS:-100}; (( SW > $(left) - 10 )) && SW=$(( $(left) - 10 ))
  echo "== sweep ($SW s)"
  if (( SW > 15 )); then
    timeout $((SW + 20)) env $SWEEP_ENV python3 packages/fp8-scaling/benchmarks/sweep_cast.py --out "$OUT" \
      --budget "$SW" ${SWEEP_SMOKE:-} 2>&1 | grep -v "^\s*$" | tail -60
  fi
  [[ -s $OUT/fp8_tuned.json ]] && export FP8_SCALING_TUNED="$OUT/fp8_tuned.json" \
    && echo "tuned table: $FP8_SCALING_TUNED"
fi

if [[ $STAGES == *profile* ]]; then
  PS=${FP8_PROFILE_SECONDS:-75}; (( PS > $(left) - 30 )) && PS=$(( $(left) - 30 ))
  echo "== profile ($PS s)"
  if (( PS > 15 )); then
    timeout $((PS + 30)) python3 packages/fp8-scaling/benchmarks/profile_host.py "$OUT/fp8_profile.json" \
      --kinds "${FP8_PROFILE_KINDS:-ours,ours_perop,torchao_tensorwise,bf16}" \
      --shapes "${FP8_PROFILE_SHAPES:-4096x4096x4096,8192x8192x8192}" --budget "$PS" $PROFILE_ARGS \
      ${FP8_PROFILE_ARGS:-} 2>&1 \
      | grep -v "^\s*$" | grep -v "^USDT\|^ERROR:.*gpuGetDeviceCount\|SyncActivityProfiler" | tail -80
  fi
fi

if [[ $STAGES == *cases* ]]; then
  RESERVE=5; [[ $STAGES == *tests* ]] && RESERVE=${FP8_TESTS_RESERVE:-25}
  T=$(( $(left) - RESERVE ))
  echo "== cases ($T s): $CASES"
  if (( T > 20 )); then
    timeout "$T" python3 packages/fp8-scaling/benchmarks/run_cases.py "$OUT" "$CASES" $DEV 2>&1 \
      | grep -v "^\s*$" | grep -v "^\[" | tail -150
  fi
fi

if [[ $STAGES == *tests* && $DEV == cuda ]]; then
  T=$(( $(left) - 5 ))
  echo "== tests ($T s)"
  if (( T > 15 )); then
    timeout "$T" python3 -m pytest -q -p no:cacheprovider -m gpu -k "${FP8_TESTS_K:-cuda_graph or bit_exact or fullgraph or fused or pair}" \
      packages/fp8-scaling/tests/test_fp8_scaling_gpu.py 2>&1 | grep -v DEBUG | tail -15
  fi
fi
echo "== done in $((SECONDS - START)) s"
ls -la "$OUT"
