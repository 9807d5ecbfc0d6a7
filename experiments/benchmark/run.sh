#!/usr/bin/env bash
# Full-width CIFAR-10 benchmark (w=64, batch 64, float32), single steps (steps_per_jit=1)
# and two iterations per compiled call (steps_per_jit=2), each with a 20-step training loop
# on the real data. Writes <backend>_w64_b64_k<k>.json next to this file.
# Usage: bash experiments/benchmark/run.sh [extra flags, e.g. --config.compute_dtype=bfloat16]
set -euo pipefail
cd "$(dirname "$0")/../.."
backend=$(python -c 'import jax; print(jax.default_backend())')
for k in 1 2; do
  python -m lpaae_jax.benchmark --config=configs/cifar10.py --config.steps_per_jit=$k \
    --repeats=3 --loop_steps=20 --json="experiments/benchmark/${backend}_w64_b64_k$k.json" "$@"
done
