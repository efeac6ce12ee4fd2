#!/usr/bin/env bash
# snowflake phase b on the 16-core machine: Centipede-20 policy divergence (mlp / nervenet /
# snowflake x 3 seeds) and Centipede-6 training + zero-shot transfer, on cores 4-15 (12 cores,
# one single-threaded process per core) next to other jobs, <= 490 s (SNOWFLAKE_BUDGET):
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:):/tmp/site OUT=<dir> bash packages/snowflake/benchmarks/gpu_run_b.sh
SNOWFLAKE_PHASE=b exec bash "$(dirname "$0")/gpu_run.sh" "$@"
