#!/usr/bin/env bash
# Figures 3 and 4 for MNIST from the CPU study's seed-0 runs (width 8, 1000 iterations;
# run experiments/mnist_cpu_study first). Writes experiments/figures/mnist_<setting>/.
# Usage: LPAAE_DATA_DIR=../shared/tfds bash experiments/figures/run_mnist_study.sh [STUDY_WORKDIR]
set -euo pipefail
study="${1:-runs/mnist_cpu_study}"
for setting in supervised unsupervised; do
  python -m experiments.figures.run --config="configs/mnist.py:${setting}" \
    --config.model.width=8 \
    --learned_workdir="$study/${setting}_learned_seed0" \
    --fixed_workdir="$study/${setting}_fixed_seed0" \
    --out="experiments/figures/mnist_${setting}"
done
