r"""XLA's 3x3 convolutions against cpu/conv.py's Winograd F(4x4, 3x3), layer by layer.

Run:
  python -m experiments.benchmark.winograd_layers > experiments/benchmark/winograd_layers_cpu.txt

For every 3x3 stride-1 SAME convolution shape of the networks at widths 8, 16, 32 and 64
(batch 64, float32): one jitted call computing the forward pass and both gradients (a
`jax.vjp`, as a train step needs them), with XLA's convolutions and with
`conv.winograd_conv`, compiled with the train steps' CPU compiler options in a process
that keeps freed memory (as training runs). Medians of 5 calls, the two alternated over
ROUNDS rounds; the ratio is of the medians over rounds. Also the largest deviation of
each of the three results from XLA's, relative to its largest magnitude, and whether
`conv.winograd_is_faster` picks Winograd. The rule in cpu/conv.py was read off this table.
"""

import statistics

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from experiments.benchmark.kernel_gradients import BATCH, NHWC, median_seconds
from lpaae_jax.cpu import compiler
from lpaae_jax.cpu import conv as conv_lib
from lpaae_jax.cpu import malloc

ROUNDS = 3
SAME_3X3 = ((1, 1), (1, 1))


def layer_shapes(width):
  """(channels, map size) of the 3x3 stride-1 convs with as many channels in as out."""
  return [(width, 32), (2 * width, 16), (4 * width, 8), (8 * width, 4)]


def forward_and_gradients(convolution):
  def run(x, kernel, output_grad):
    output, vjp = jax.vjp(convolution, x, kernel)
    return (output, *vjp(output_grad))
  return run


def xla_conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), SAME_3X3, dimension_numbers=NHWC)


def against_xla(convolution, options, x, kernel, output_grad):
  """(XLA's ms, `convolution`'s ms, the largest deviation of y, dx and dk from XLA's relative
  to its largest magnitude): forward and both gradients in one jitted call each, medians of
  5 calls alternated over ROUNDS rounds."""
  xla, ours = (jax.jit(forward_and_gradients(fn), compiler_options=options)
               for fn in (xla_conv, convolution))
  expected, got = xla(x, kernel, output_grad), ours(x, kernel, output_grad)
  deviations = [float(jnp.abs(g - e).max() / jnp.abs(e).max()) for g, e in zip(got, expected)]
  times = {"xla": [], "ours": []}
  for _ in range(ROUNDS):
    times["xla"].append(median_seconds(xla, x, kernel, output_grad))
    times["ours"].append(median_seconds(ours, x, kernel, output_grad))
  return (*(1e3 * statistics.median(times[k]) for k in ("xla", "ours")), deviations)


def main():
  malloc.keep_freed_memory()
  rng = np.random.default_rng(0)
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, batch {BATCH}, float32; "
        "forward + input gradient + kernel gradient in one call, ms (median over rounds)")
  print(f"{'channels':>8}{'size':>5}{'XLA':>9}{'Winograd':>10}{'speed-up':>10}"
        f"{'max deviation y / dx / dk':>28}  Winograd chosen")
  for width in (8, 16, 32, 64):
    for channels, size in layer_shapes(width):
      options = dict(compiler.compiler_options(BATCH * size * size * channels * 4))
      x = jnp.asarray(rng.normal(size=(BATCH, size, size, channels)), jnp.float32)
      kernel = jnp.asarray(rng.normal(size=(3, 3, channels, channels)) / np.sqrt(9 * channels),
                           jnp.float32)
      output_grad = jnp.asarray(rng.normal(size=x.shape[:3] + (channels,)), jnp.float32)
      xla_ms, winograd_ms, deviations = against_xla(conv_lib.winograd_conv, options, x,
                                                    kernel, output_grad)
      chosen = conv_lib.winograd_is_faster(x.shape, kernel.shape, (1, 1), SAME_3X3)
      print(f"{channels:>8}{size:>5}{xla_ms:9.2f}{winograd_ms:10.2f}{xla_ms / winograd_ms:10.2f}"
            f"{' / '.join(f'{d:.0e}' for d in deviations):>28}  {chosen}", flush=True)


if __name__ == "__main__":
  main()
