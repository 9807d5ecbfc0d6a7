#!/usr/bin/env bash
# Full-width CIFAR-10 benchmark (w=64), single steps (steps_per_jit=1) and two iterations
# per compiled call (steps_per_jit=2), each with a 20-step training loop on the real data.
# BATCH_SIZE (default 64) and COMPUTE_DTYPE (default float32) choose the batch and dtype.
# Writes <backend>_w64_b<batch>[_<dtype>]_k<k>.json next to this file.
# Usage: bash experiments/benchmark/run.sh [extra flags]
# The GPU table of issue #6:
#   for b in 64 256; do for d in float32 bfloat16; do
#     BATCH_SIZE=$b COMPUTE_DTYPE=$d bash experiments/benchmark/run.sh; done; done
set -euo pipefail
cd "$(dirname "$0")/../.."
backend=$(python -c 'import jax; print(jax.default_backend())')
batch=${BATCH_SIZE:-64}
dtype=${COMPUTE_DTYPE:-float32}
name="${backend}_w64_b${batch}$([ "$dtype" = float32 ] || echo "_$dtype")"
for k in 1 2; do
  python -m lpaae_jax.benchmark --config=configs/cifar10.py --config.steps_per_jit=$k \
    --config.batch_size="$batch" --config.compute_dtype="$dtype" \
    --repeats=3 --loop_steps=20 --json="experiments/benchmark/${name}_k$k.json" "$@"
done
