"""How the networks and steps are computed: the one reader of `config.fast_paths`.

"cpu": the XLA:CPU formulations of `lpaae_jax.cpu` (its convolutions as the networks'
`conv` and `conv_transpose`, its compiler options, unrolled fused iterations, small
InceptionV3 batches, glibc keeping freed memory); "xla": plain Flax layers and XLA's
defaults; "auto": "cpu" on the CPU backend, "xla" on GPUs and TPUs. Same functions and
parameters either way, so a checkpoint restores under both.
"""

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections

from lpaae_jax import config_validation
from lpaae_jax.cpu import compiler
from lpaae_jax.cpu import conv as cpu_conv
from lpaae_jax.cpu import malloc

# With the CPU formulations InceptionV3 runs on this many images at a time: on XLA:CPU a
# 299x299 batch of 100 overflows the caches (experiments/benchmark/inception_batch_cpu.txt).
CPU_INCEPTION_BATCH_SIZE = 2

# nn.Conv (same parameters, names and initialisers) with the CPU convolutions.
_CPU_CONV = functools.partial(nn.Conv, conv_general_dilated=cpu_conv.conv_general_dilated)


def conv_transpose_4x4_stride2(x, kernel):
  """nn.ConvTranspose(F, (4, 4), strides=(2, 2), padding="SAME")'s function of an NHWC
  input and its unflipped (4, 4, C, F) kernel."""
  return jax.lax.conv_transpose(x, kernel, (2, 2), "SAME",
                                dimension_numbers=("NHWC", "HWIO", "NHWC"))


@dataclasses.dataclass(frozen=True)
class Backend:
  """The formulations in use; hashable (a field of `models.ModelSpec`)."""
  cpu: bool = False

  @property
  def conv(self) -> Any:
    """The networks' 2-D convolution class (nn.Conv's fields and parameters)."""
    return _CPU_CONV if self.cpu else nn.Conv

  @property
  def conv_transpose(self) -> Callable:
    """(x, (4, 4, C, F) kernel) -> the 4x4 stride-2 SAME transposed conv."""
    return cpu_conv.sub_pixel_conv_transpose if self.cpu else conv_transpose_4x4_stride2

  @property
  def unroll_fused_iterations(self) -> bool:
    # XLA:CPU emits a while-loop body's weight-gradient convolutions as plain loops (much
    # slower: experiments/benchmark/NOTEBOOK.md); elsewhere the rolled loop compiles faster.
    return self.cpu

  def compiler_options(self, largest_buffer_bytes: int = 0) -> tuple[tuple[str, Any], ...]:
    """Compiler options of the train steps and InceptionV3, as hashable pairs."""
    return compiler.compiler_options(largest_buffer_bytes) if self.cpu else ()

  def init_compiler_options(self) -> tuple[tuple[str, Any], ...]:
    return compiler.INIT_OPTIONS if self.cpu else ()

  def inception_batch_size(self, batch_size: int) -> int:
    return min(batch_size, CPU_INCEPTION_BATCH_SIZE) if self.cpu else batch_size

  def configure_process(self) -> None:
    """Process-wide settings of a training process (glibc keeps freed step memory)."""
    if self.cpu:
      malloc.keep_freed_memory()


def from_fast_paths(fast_paths: str) -> Backend:
  """config.fast_paths -> Backend ("auto": the CPU formulations on the CPU backend)."""
  if fast_paths not in config_validation.FAST_PATHS:
    raise ValueError(f"fast_paths={fast_paths!r}; use one of "
                     f"{', '.join(config_validation.FAST_PATHS)}.")
  if fast_paths == "auto":
    return Backend(cpu=jax.default_backend() == "cpu")
  return Backend(cpu=fast_paths == "cpu")


def from_config(config: ml_collections.ConfigDict) -> Backend:
  return from_fast_paths(config.get("fast_paths", "auto"))
