#!/usr/bin/env bash
# snowflake phase b: Centipede-20 policy divergence (mlp / nervenet / snowflake x 3 seeds) and
# Centipede-6 training + zero-shot transfer, 15 processes on SNOWFLAKE_CORES (24 cores: 2 per
# Centipede-20 run, 1 per Centipede-6 run; < 15 cores: MLP seeds share) next to other jobs, the
# policy maths on a GPU when one is visible (SNOWFLAKE_DEVICE), <= SNOWFLAKE_BUDGET s:
#   PYTHONPATH=$(ls -d packages/*/src tools/*/src | paste -sd:):/tmp/site OUT=<dir> bash packages/snowflake/benchmarks/gpu_run_b.sh
SNOWFLAKE_PHASE=b exec bash "$(dirname "$0")/gpu_run.sh" "$@"
