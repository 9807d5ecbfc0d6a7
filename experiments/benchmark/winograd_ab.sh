#!/usr/bin/env bash
# Whole iterations with conv.py's Winograd F(4x4, 3x3) convolutions (as the code is) and
# without them (XLA's 3x3 convolutions, the rest of the CPU fast paths kept), alternating
# in separate processes, ROUNDS times per width; PyTorch eager's iteration
# (torch_reference.py) in each round too when TORCH_PYTHON is set.
# Usage: [TORCH_PYTHON=/path/to/torch-venv/bin/python] bash experiments/benchmark/winograd_ab.sh \
#          > experiments/benchmark/winograd_ab_cpu.txt
# Env: ROUNDS (default 3), WIDTHS (default "64 16"; width 8 has no layer Winograd takes).
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/benchmark/iteration_ms.sh
echo "# width, round: ours with Winograd | without, PyTorch eager, ms per iteration (medians of 5); $(date -u +%F)"
for width in ${WIDTHS:-64 16}; do
  for round in $(seq "${ROUNDS:-3}"); do
    a=$(ours_ms experiments.benchmark.kernel_gradients_on_off on "$width" cifar10)
    b=$(ours_ms experiments.benchmark.kernel_gradients_on_off winograd_off "$width" cifar10)
    echo "width $width round $round: ours $a | $b   PyTorch $(torch_ms "$width" cifar10)"
  done
done
