#!/usr/bin/env bash
# Our iteration with the C library's malloc as it comes, with glibc's transparent-huge-page
# tunable (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, glibc 2.35+) and with a preloaded tcmalloc,
# and PyTorch eager's (torch_reference.py) the same three ways, alternating, ROUNDS times per
# width.
# Usage: TORCH_PYTHON=/path/to/torch-venv/bin/python bash experiments/benchmark/malloc_ab.sh \
#          > experiments/benchmark/malloc_ab_cpu.txt
# Needs tcmalloc (Debian/Ubuntu: apt install libtcmalloc-minimal4; TCMALLOC= its path).
# XLA:CPU maps and unmaps each execution's temp buffer and Eigen's contraction blocks
# through malloc every call (experiments/benchmark/NOTEBOOK.md, "the allocator").
# The benchmark now tells glibc to keep freed memory (cpu/malloc.py) with the CPU fast
# paths, so ours' glibc rows run with those settings; malloc_thresholds_ab.sh compares them.
set -euo pipefail
cd "$(dirname "$0")/../.."
tcmalloc=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
[ -f "$tcmalloc" ] || { echo "no tcmalloc at $tcmalloc: apt install libtcmalloc-minimal4 or set TCMALLOC=" >&2; exit 1; }
rounds=${ROUNDS:-3}
source experiments/benchmark/iteration_ms.sh
hugetlb=glibc.malloc.hugetlb=1
echo "# width, round: ours (system malloc, $hugetlb, tcmalloc), PyTorch eager (the same three), ms per iteration; $(date -u +%F)"
for spec in "8 mnist" "16 cifar10" "64 cifar10"; do
  set -- $spec
  for round in $(seq "$rounds"); do
    a=$(ours_ms lpaae_jax.benchmark "$1" "$2")
    b=$(GLIBC_TUNABLES=$hugetlb ours_ms lpaae_jax.benchmark "$1" "$2")
    c=$(LD_PRELOAD="$tcmalloc" ours_ms lpaae_jax.benchmark "$1" "$2")
    d=$(torch_ms "$1" "$2"); e=$(GLIBC_TUNABLES=$hugetlb torch_ms "$1" "$2")
    f=$(LD_PRELOAD="$tcmalloc" torch_ms "$1" "$2")
    echo "width $1 round $round: ours $a | $b | $c   PyTorch $d | $e | $f"
  done
done
