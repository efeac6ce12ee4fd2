#!/usr/bin/env bash
# snowflake phase b on the 16-core machine (cores 0-15), <= 540 s wall: train mlp / nervenet /
# snowflake on Centipede-6 (2 seeds each, in parallel), then zero-shot evaluation on
# Centipede-6/8/10/12/20. Same environment and smoke switch as gpu_run.sh:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:) OUT=<dir> bash packages/snowflake/benchmarks/gpu_run_b.sh
SNOWFLAKE_PHASE=b exec bash "$(dirname "$0")/gpu_run.sh" "$@"
