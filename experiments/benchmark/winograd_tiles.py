r"""The Winograd convolutions' tile gathers: stride-4 slices (`conv._tile_positions`, since
2026-12-06) against reshapes and a transpose (as before), layer by layer.

Run:
  python -m experiments.benchmark.winograd_tiles > experiments/benchmark/winograd_tiles_cpu.txt

For width 64's three Winograd levels (16x16x128, 8x8x256, 4x4x512; batch 64, float32): the
input tiles (`conv._input_tiles`, with the input transform), the output gradient's tiles
(`conv._output_tiles`) and a whole `conv.winograd_conv` (forward and both gradients), each
traced once with the earlier gather (`kernel_gradients_on_off._tile_positions_by_transpose`)
and once as the code is; compiled with the train steps' CPU compiler options in a process
that keeps freed memory; medians of 5 calls alternated over ROUNDS rounds, median over
rounds.
"""

import statistics

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark import kernel_gradients_on_off
from experiments.benchmark.kernel_gradients import BATCH, median_seconds
from experiments.benchmark.winograd_layers import forward_and_gradients
from lpaae_jax import conv as conv_lib
from lpaae_jax import cpu_malloc
from lpaae_jax import models

ROUNDS = 3


def compiled(fn, options, args, earlier_gather: bool):
  """`fn` jitted and compiled for `args`, traced with the earlier or the current gather."""
  with kernel_gradients_on_off.rule_applied("tiles_by_transpose" if earlier_gather else "on"):
    return jax.jit(fn, compiler_options=options).lower(*args).compile()


def main():
  cpu_malloc.keep_freed_memory()
  rng = np.random.default_rng(0)
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, batch {BATCH}, float32, ms "
        "(median over rounds): reshapes + transpose -> stride-4 slices")
  print(f"{'level':>12}{'input tiles':>22}{'output tiles':>22}{'forward + both grads':>26}")
  calls = {"input tiles": lambda x, k, g: conv_lib._input_tiles(x),  # pylint: disable=protected-access
           "output tiles": lambda x, k, g: conv_lib._output_tiles(g),  # pylint: disable=protected-access
           "all": forward_and_gradients(conv_lib.winograd_conv)}
  for size, channels in ((16, 128), (8, 256), (4, 512)):
    options = dict(models.compiler_options(True, BATCH * size * size * channels * 4))
    x, output_grad = (jnp.asarray(rng.normal(size=(BATCH, size, size, channels)), jnp.float32)
                      for _ in range(2))
    kernel = jnp.asarray(rng.normal(size=(3, 3, channels, channels)) / np.sqrt(9 * channels),
                         jnp.float32)
    args = (x, kernel, output_grad)
    row = []
    for fn in calls.values():
      earlier, current = (compiled(fn, options, args, flag) for flag in (True, False))
      for got, expected in zip(jax.tree_util.tree_leaves(current(*args)),
                               jax.tree_util.tree_leaves(earlier(*args))):
        np.testing.assert_allclose(got, expected, rtol=1e-5,
                                   atol=1e-5 * float(jnp.abs(expected).max()))
      times = ([], [])
      for _ in range(ROUNDS):
        for executable, out in zip((earlier, current), times):
          out.append(median_seconds(executable, *args))
      row.append(tuple(1e3 * statistics.median(t) for t in times))
    cells = "".join(f"{f'{a:.2f} -> {b:.2f}':>{w}}" for (a, b), w in zip(row, (22, 22, 26)))
    print(f"{f'{size}x{size}x{channels}':>12}{cells}", flush=True)


if __name__ == "__main__":
  main()
