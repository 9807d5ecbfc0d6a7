#!/usr/bin/env bash
# Whole iterations with the steps' temporaries in heaps (models.CPU_TEMP_HEAP_BYTES) and in
# one block (XLA's default), alternating in separate processes (the allocator's state is
# per process), ROUNDS times per width; PyTorch eager's iteration (torch_reference.py) in
# each round too when TORCH_PYTHON is set.
# Usage: [TORCH_PYTHON=/path/to/torch-venv/bin/python] bash experiments/benchmark/temp_heaps_ab.sh \
#          > experiments/benchmark/temp_heaps_ab_cpu.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
source experiments/benchmark/iteration_ms.sh
echo "# width, round: ours with heaps | one block, PyTorch eager, ms per iteration (medians of 5); $(date -u +%F), malloc: $(python -c 'from lpaae_jax.cpu import malloc; print(malloc.malloc_library())')"
for spec in "8 mnist" "16 cifar10" "64 cifar10"; do
  set -- $spec
  for round in $(seq "$rounds"); do
    a=$(ours_ms experiments.benchmark.temp_heaps_on_off heaps "$1" "$2" | cut -d" " -f1)
    b=$(ours_ms experiments.benchmark.temp_heaps_on_off one_block "$1" "$2" | cut -d" " -f1)
    c=$(torch_ms "$1" "$2")
    echo "width $1 round $round: ours $a | $b   PyTorch $c"
  done
done
