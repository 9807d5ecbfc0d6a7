r"""The decoder's sub-pixel transposed convs: input gradient by the four 2x2 convs against
the transposed conv's own (one 4x4 stride-2 conv), layer by layer.

Run:
  python -m experiments.benchmark.sub_pixel_layers > experiments/benchmark/sub_pixel_layers_cpu.txt

For the decoder's three up blocks at widths 16 and 64 (4x4 -> 8x8, 8x8 -> 16x16, 16x16 ->
32x32; batch 64, float32): the input gradient alone by differentiating the four 2x2 convs
(`conv._sub_pixel_forward`, as until 2026-12-06) and by the transposed conv's own gradient
(what `conv.sub_pixel_conv_transpose` uses), then forward and both gradients in one call,
both ways. Compiled with the train steps' CPU compiler options in a process that keeps
freed memory; medians of 5 calls, alternated over ROUNDS rounds, median over rounds.
"""

import statistics

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark.kernel_gradients import BATCH, median_seconds
from experiments.benchmark.winograd_layers import forward_and_gradients
from lpaae_jax import conv as conv_lib
from lpaae_jax import cpu_malloc
from lpaae_jax import models

ROUNDS = 3


def input_gradient(convolution):
  def run(x, kernel, output_grad):
    return jax.vjp(lambda x_: convolution(x_, kernel), x)[1](output_grad)[0]
  return run


def main():
  cpu_malloc.keep_freed_memory()
  rng = np.random.default_rng(0)
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, batch {BATCH}, float32, ms "
        "(median over rounds); input gradient alone, then forward + both gradients")
  print(f"{'width':>5}{'in -> out, map':>22}{'dx 2x2 convs':>14}{'dx stride 2':>13}"
        f"{'all, before':>13}{'all, now':>10}{'speed-up':>10}")
  for width in (16, 64):
    options = dict(models.compiler_options(True, BATCH * 32 * 32 * width * 4))
    for level in (2, 1, 0):  # the decoder's order: 4x4 first
      in_features, features = models.level_width(width, level + 1), models.level_width(width, level)
      size = 32 // 2**(level + 1)
      x = jnp.asarray(rng.normal(size=(BATCH, size, size, in_features)), jnp.float32)
      kernel = jnp.asarray(rng.normal(size=(4, 4, in_features, features))
                           / np.sqrt(16 * in_features), jnp.float32)
      output_grad = jnp.asarray(rng.normal(size=(BATCH, 2 * size, 2 * size, features)),
                                jnp.float32)
      calls = {
          "dx 2x2": input_gradient(conv_lib._sub_pixel_forward),  # pylint: disable=protected-access
          "dx stride 2": input_gradient(conv_lib._transposed_conv),  # pylint: disable=protected-access
          "all before": forward_and_gradients(conv_lib._sub_pixel_forward),  # pylint: disable=protected-access
          "all now": forward_and_gradients(conv_lib.sub_pixel_conv_transpose)}
      jitted = {name: jax.jit(fn, compiler_options=options) for name, fn in calls.items()}
      for before, now in (("dx 2x2", "dx stride 2"), ("all before", "all now")):
        for got, expected in zip(jax.tree_util.tree_leaves(jitted[now](x, kernel, output_grad)),
                                 jax.tree_util.tree_leaves(jitted[before](x, kernel, output_grad))):
          np.testing.assert_allclose(got, expected, rtol=1e-4,
                                     atol=1e-4 * float(jnp.abs(expected).max()))
      times = {name: [] for name in jitted}
      for _ in range(ROUNDS):
        for name, fn in jitted.items():
          times[name].append(median_seconds(fn, x, kernel, output_grad))
      ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
      shape = f"{in_features} -> {features}, {size}x{size}"
      print(f"{width:>5}{shape:>22}{ms['dx 2x2']:14.2f}{ms['dx stride 2']:13.2f}"
            f"{ms['all before']:13.2f}{ms['all now']:10.2f}"
            f"{ms['all before'] / ms['all now']:10.2f}", flush=True)


if __name__ == "__main__":
  main()
