r"""`python -m lpaae_jax.benchmark` with the steps' temporaries in heaps (as the code is) or
in one block (XLA's default).

  python -m experiments.benchmark.temp_heaps_on_off {heaps|one_block} \
      --config=configs/cifar10.py:supervised [--config.model.width=16] --loop_steps=0

"heaps" is the code as it is (`lpaae_jax.cpu.compiler.TEMP_HEAP_BYTES`: heaps of 16 MiB or the largest
activation); "one_block" makes the heap larger than any step's temporaries, which XLA then
allocates as one block, as it did before. The allocator's state is per process, so the two
run in separate processes: `bash experiments/benchmark/temp_heaps_ab.sh` alternates them
(`temp_heaps_ab_cpu.txt`).
"""

import sys

from lpaae_jax import benchmark
from lpaae_jax.cpu import compiler

MODES = ("heaps", "one_block")

if __name__ == "__main__":
  if len(sys.argv) < 2 or sys.argv[1] not in MODES:
    sys.exit("usage: python -m experiments.benchmark.temp_heaps_on_off {heaps|one_block} "
             "[benchmark flags]")
  if sys.argv.pop(1) == "one_block":
    compiler.TEMP_HEAP_BYTES = 2**31 - 1  # the option's largest value (an int32)
  benchmark.run()
