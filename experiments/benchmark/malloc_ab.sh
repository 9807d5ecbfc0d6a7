#!/usr/bin/env bash
# Our iteration with the C library's malloc against a preloaded tcmalloc, and PyTorch
# eager's (torch_reference.py) the same two ways, alternating, ROUNDS times per width.
# Usage: TORCH_PYTHON=/path/to/torch-venv/bin/python bash experiments/benchmark/malloc_ab.sh \
#          > experiments/benchmark/malloc_ab_cpu.txt
# Needs tcmalloc (Debian/Ubuntu: apt install libtcmalloc-minimal4; TCMALLOC= its path).
# XLA:CPU maps and unmaps each execution's temp buffer and Eigen's contraction blocks
# through malloc every call (experiments/README.md, "the allocator").
set -euo pipefail
cd "$(dirname "$0")/../.."
tcmalloc=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
[ -f "$tcmalloc" ] || { echo "no tcmalloc at $tcmalloc: apt install libtcmalloc-minimal4 or set TCMALLOC=" >&2; exit 1; }
rounds=${ROUNDS:-2}
ours() {  # width, dataset -> iteration ms
  local json; json=$(mktemp)
  python -m lpaae_jax.benchmark --config="configs/$2.py:supervised" --config.model.width="$1" \
    --repeats=5 --loop_steps=0 --json="$json" > /dev/null 2>&1
  python -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['phases']['iteration']['ms']), r['environment']['malloc'])" "$json"
  rm -f "$json"
}
theirs() {
  [ -n "${TORCH_PYTHON:-}" ] || { echo "-"; return; }
  "$TORCH_PYTHON" experiments/benchmark/torch_reference.py --dataset="$2" --width="$1" \
    --repeats=5 | python -c "import json,sys; print(round(json.load(sys.stdin)['ms']['iteration']))"
}
echo "# width, round: ours (system malloc, tcmalloc), PyTorch eager (system, tcmalloc), ms per iteration; $(date -u +%F)"
for spec in "8 mnist" "16 cifar10" "64 cifar10"; do
  set -- $spec
  for round in $(seq "$rounds"); do
    a=$(ours "$1" "$2"); b=$(LD_PRELOAD="$tcmalloc" ours "$1" "$2")
    c=$(theirs "$1" "$2"); d=$(LD_PRELOAD="$tcmalloc" theirs "$1" "$2")
    echo "width $1 round $round: ours $a | $b   PyTorch $c | $d"
  done
done
