#!/usr/bin/env bash
# Full-width CIFAR-10 benchmark (w=64, batch 64, float32); writes the JSON next to this file.
# Usage: bash experiments/benchmark/run.sh [extra flags, e.g. --config.compute_dtype=bfloat16]
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m lpaae_jax.benchmark --config=configs/cifar10.py --repeats=3 --loop_steps=0 \
  --json="experiments/benchmark/$(python -c 'import jax; print(jax.default_backend())')_w64_b64.json" "$@"
