r"""XLA's 3x3 convolutions alone, against matmul formulations of the same forward pass.

  python -m experiments.benchmark.conv_formulations > experiments/benchmark/conv_formulations_cpu.txt

For the CIFAR-10 networks' 3x3, stride-1 layer shapes at full width (batch 64), times XLA's
forward, input gradient and kernel gradient (`lax.conv_general_dilated` and its VJPs), and
two forwards that issue #13 suggested might beat it on CPU: nine per-tap matmuls over shifted
views, and three row-tap matmuls over the horizontal taps concatenated (K = 3 Cin). (The one
im2col matmul is kernel_gradients.py's last column.) Each formulation is checked against
XLA's output before it is timed. Median of --repeats calls.
"""

from absl import app
from absl import flags
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark.kernel_gradients import median_seconds
from experiments.benchmark.kernel_gradients import NHWC

_REPEATS = flags.DEFINE_integer("repeats", 8, "Timed calls per entry (after one warm-up).")
# (spatial size, input channels, output channels): the 3x3 convs of the width-64 networks.
SHAPES = ((32, 64, 64), (16, 128, 128), (8, 256, 256))
BATCH = 64


def xla_conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)


def per_tap_conv(x, w):
  """Sum over the nine taps of (shifted view) @ w[i, j]."""
  size = x.shape[1]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(jnp.einsum("bhwc,cd->bhwd", padded[:, i:i + size, j:j + size], w[i, j])
             for i in range(3) for j in range(3))


def row_tap_conv(x, w):
  """Three matmuls, one per kernel row, over the row's three taps side by side."""
  size, cin = x.shape[1], x.shape[3]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = jnp.concatenate([padded[:, :, j:j + size] for j in range(3)], axis=-1)
  return sum(jnp.einsum("bhwc,cd->bhwd", rows[:, i:i + size], w[i].reshape(3 * cin, -1))
             for i in range(3))


def median_ms(function, *args) -> float:
  return median_seconds(function, *args, repeats=_REPEATS.value) * 1e3


def main(argv):
  del argv
  print(f"# {jax.default_backend()}, jax {jax.__version__}, batch {BATCH}, float32, "
        f"median of {_REPEATS.value}; ms (GFLOP/s)")
  print("| H=W | Cin -> Cout | GFLOP | XLA forward | XLA input grad | XLA kernel grad | "
        "per-tap forward | row-tap forward |")
  print("|---|---|---|---|---|---|---|---|")
  key_x, key_w = jax.random.split(jax.random.key(0))
  for size, cin, cout in SHAPES:
    x = jax.random.normal(key_x, (BATCH, size, size, cin))
    w = jax.random.normal(key_w, (3, 3, cin, cout)) / np.sqrt(9 * cin)
    gflop = 2 * BATCH * size * size * 9 * cin * cout / 1e9
    y = xla_conv(x, w)
    for formulation in (per_tap_conv, row_tap_conv):
      np.testing.assert_allclose(jax.jit(formulation)(x, w), y, rtol=1e-4, atol=1e-4)
    # Arguments, not closed-over constants, so XLA compiles what a train step runs.
    input_grad = jax.jit(lambda x, w, g: jax.vjp(lambda x: xla_conv(x, w), x)[1](g)[0])
    kernel_grad = jax.jit(lambda x, w, g: jax.vjp(lambda w: xla_conv(x, w), w)[1](g)[0])
    times = [median_ms(jax.jit(xla_conv), x, w), median_ms(input_grad, x, w, y),
             median_ms(kernel_grad, x, w, y), median_ms(jax.jit(per_tap_conv), x, w),
             median_ms(jax.jit(row_tap_conv), x, w)]
    print(f"| {size} | {cin} -> {cout} | {gflop:.2f} | "
          + " | ".join(f"{t:.1f} ({gflop / t * 1e3:.0f})" for t in times) + " |", flush=True)


if __name__ == "__main__":
  app.run(main)
