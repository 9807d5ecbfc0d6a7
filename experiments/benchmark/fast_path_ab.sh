#!/usr/bin/env bash
# Whole iterations with one of conv.py's CPU formulations (the code as it is) and without it
# (`kernel_gradients_on_off $OFF`: XLA's convolution there, the rest of the CPU fast paths
# kept), alternating in separate processes, ROUNDS times per width; PyTorch eager's
# iteration (torch_reference.py) in each round too when TORCH_PYTHON is set.
# Usage: [TORCH_PYTHON=/path/to/torch-venv/bin/python] OFF=winograd_off WIDTHS="64 16" \
#          bash experiments/benchmark/fast_path_ab.sh > experiments/benchmark/winograd_ab_cpu.txt
#        OFF=thin_off WIDTHS="8 16 64" bash ... > experiments/benchmark/thin_ab_cpu.txt
# Env: OFF (a kernel_gradients_on_off rule; default winograd_off), ROUNDS (default 3),
# WIDTHS (default "64 16"; width 8 runs MNIST, the others CIFAR-10).
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/benchmark/iteration_ms.sh
off=${OFF:-winograd_off}
echo "# width, round: ours as the code is | with $off, PyTorch eager, ms per iteration (medians of 5); $(date -u +%F)"
for width in ${WIDTHS:-64 16}; do
  dataset=cifar10; [ "$width" = 8 ] && dataset=mnist
  for round in $(seq "${ROUNDS:-3}"); do
    a=$(ours_ms experiments.benchmark.kernel_gradients_on_off on "$width" "$dataset")
    b=$(ours_ms experiments.benchmark.kernel_gradients_on_off "$off" "$width" "$dataset")
    echo "width $width round $round: ours $a | $b   PyTorch $(torch_ms "$width" "$dataset")"
  done
done
