"""XLA:CPU compiler options of the train steps, InceptionV3 and the initialisation.

XLA:CPU hands convolutions, dots and elementwise fusions to YNNPACK by default; its
stand-alone 3x3 convolutions ran the networks' full-resolution layers up to 2x slower than
XLA's own. `OPTIONS` leaves YNNPACK the dots, the elementwise fusions (with the convolution
they consume) and the reductions (bias and BatchNorm gradients), every other convolution to
XLA. XLA:CPU also allocates an execution's temporaries as one block that glibc maps fresh and
unmaps on every call; heaps below glibc's 32 MiB mmap threshold are kept for reuse. Both
measured faster (experiments/benchmark/NOTEBOOK.md, "compiler options" and "temp heaps").
"""

import functools
import logging
from typing import Any

import jax
import jax.numpy as jnp

OPTIONS = (
    ("xla_cpu_experimental_ynn_fusion_type",
     "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_ELTWISE,"
     "LIBRARY_FUSION_TYPE_REDUCE"),)
# A heap holds at least the largest buffer (`compiler_options`' largest_buffer_bytes). jax
# 0.10.2 cannot write an executable with several heaps to its persistent compilation cache.
TEMP_HEAP_BYTES = 16 * 2**20
_TEMP_HEAP_OPTION = "xla_multiheap_size_constraint_per_heap"

# The initialisation runs once, but its RNG-heavy graph takes XLA:CPU ~5x longer to
# compile at full optimisation than to run: the expensive passes are skipped.
INIT_OPTIONS = (("xla_backend_optimization_level", 0),
                ("xla_llvm_disable_expensive_passes", True))


@functools.lru_cache(maxsize=None)
def compiler_options(largest_buffer_bytes: int = 0) -> tuple[tuple[str, Any], ...]:
  """`OPTIONS` and temporaries split into heaps of max(TEMP_HEAP_BYTES,
  largest_buffer_bytes) (XLA warns for each buffer larger than a heap), as hashable pairs,
  each where this jaxlib knows it (they are experimental flags)."""
  heap_bytes = min(max(TEMP_HEAP_BYTES, largest_buffer_bytes), 2**31 - 1)  # an int32
  accepted = []
  for option in OPTIONS + ((_TEMP_HEAP_OPTION, heap_bytes),):
    try:
      jax.jit(lambda x: x + 1, compiler_options=dict([option])).lower(
          jnp.zeros(())).compile()
    except jax.errors.JaxRuntimeError as error:
      logging.warning("This jaxlib rejects the CPU compiler option %s (%s); compiling "
                      "without it.", option, error)
      continue
    accepted.append(option)
  return tuple(accepted)
