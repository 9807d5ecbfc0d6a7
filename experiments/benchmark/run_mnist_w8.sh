#!/usr/bin/env bash
# A small model where host overhead shows: MNIST w=8, batch 64, steps_per_jit 1 and 4, a
# 200-step training loop on the real data. Writes <backend>_mnist_w8_b64_k<k>.json here.
# Usage: bash experiments/benchmark/run_mnist_w8.sh [extra flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
backend=$(python -c 'import jax; print(jax.default_backend())')
for k in 1 4; do
  python -m lpaae_jax.benchmark --config=configs/mnist.py --config.model.width=8 \
    --config.batch_size=64 --config.steps_per_jit=$k --repeats=3 --loop_steps=200 \
    --json="experiments/benchmark/${backend}_mnist_w8_b64_k$k.json" "$@"
done
