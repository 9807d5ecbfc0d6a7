#!/usr/bin/env bash
# Our iteration (with the temporaries in heaps) under glibc's malloc as it comes; with its
# trim and mmap thresholds fixed high and a 1 GiB top pad (freed memory is never returned
# to the kernel and arena heaps are never deleted, so the next call touches no fresh
# pages), set through glibc's environment variables; the same set by the process itself
# (cpu/malloc.py, what training does with the CPU fast paths); and with a
# preloaded tcmalloc. One process each, alternating, ROUNDS times per width. Prints
# `compiler_options --variants=ours` per process (ms per iteration, page faults), and with
# TORCH_PYTHON set PyTorch eager's iteration (torch_reference.py) under the same malloc
# ("-" for the in-process setting, which is ours).
# Usage: [TORCH_PYTHON=/path/to/torch-venv/bin/python] bash \
#   experiments/benchmark/malloc_thresholds_ab.sh > experiments/benchmark/malloc_thresholds_ab_cpu.txt
# Env: ROUNDS (default 2), WIDTHS (default "64 16 8"), ITERATIONS per process (default 7),
#   TCMALLOC (default Debian/Ubuntu's libtcmalloc-minimal4; the row is skipped without it).
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/benchmark/iteration_ms.sh
tcmalloc=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
keep="MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TOP_PAD_=1073741824"
settings=("glibc as it comes||" "glibc, thresholds + top pad (environment)|$keep|"
          "glibc, cpu/malloc.py||--keep_freed_memory")
[ -f "$tcmalloc" ] && settings+=("tcmalloc|LD_PRELOAD=$tcmalloc|")
echo "# width, round, malloc: compiler_options --variants=ours (median ms/iteration, page faults/iteration) | PyTorch eager ms; $(date -u +%F)"
for width in ${WIDTHS:-64 16 8}; do
  dataset=cifar10; [ "$width" = 8 ] && dataset=mnist
  for round in $(seq "${ROUNDS:-2}"); do
    for setting in "${settings[@]}"; do
      IFS="|" read -r name vars flag <<< "$setting"
      line=$(env $vars python -m experiments.benchmark.compiler_options \
        --config="configs/$dataset.py:supervised" --config.model.width="$width" \
        --variants=ours --rounds="${ITERATIONS:-7}" $flag 2>/dev/null | grep "^ours .*median")
      line=$(echo ${line#ours})  # one space between fields
      torch="-"; [ -z "$flag" ] && torch=$(env $vars bash -c "source experiments/benchmark/iteration_ms.sh; torch_ms $width $dataset")
      echo "width $width round $round, $name: $line | PyTorch $torch"
    done
  done
done
