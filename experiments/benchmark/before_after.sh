#!/usr/bin/env bash
# Whole iterations of two checkouts of this repository, in separate alternating processes:
#   BEFORE=/path/to/older/checkout bash experiments/benchmark/before_after.sh > out.txt
# Each round runs `python -m lpaae_jax.benchmark` (median of 5 iterations, no loop) from
# BEFORE, then from this checkout, at each of WIDTHS ("8 16 64"; 8 runs MNIST, the others
# CIFAR-10, supervised), ROUNDS (3) rounds. About 20 min with the defaults on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/benchmark/iteration_ms.sh
here=$PWD
rounds=${ROUNDS:-3}
echo "# width, round: before ($(git -C "$BEFORE" rev-parse --short HEAD)) | after ($(git rev-parse --short HEAD)), ms per iteration (medians of 5); $(date -u +%F)"
for width in ${WIDTHS:-8 16 64}; do
  dataset=$([ "$width" = 8 ] && echo mnist || echo cifar10)
  for round in $(seq "$rounds"); do
    before=$(cd "$BEFORE" && ours_ms lpaae_jax.benchmark "$width" "$dataset")
    after=$(cd "$here" && ours_ms lpaae_jax.benchmark "$width" "$dataset")
    echo "$width $round: ${before%% *} | ${after%% *}"
  done
done
