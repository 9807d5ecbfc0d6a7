r"""XLA's convolution kernel gradient against cpu/conv.py's tap-by-tap matmuls, layer by layer;
and XLA's forward convolution against the same convolution as one matmul (im2col).

Run:
  python -m experiments.benchmark.kernel_gradients > experiments/benchmark/kernel_gradients_cpu.txt

For the convolution shapes of the networks at widths 8, 16, 32 and 64 (batch 64): the
forward convolution, XLA's kernel gradient and `conv.kernel_gradient` (median ms of 5 after
warm-up), and whether `conv.matmul_kernel_gradient_is_faster` picks the matmuls. The rule
in cpu/conv.py was read off this table. The last column is the forward convolution as one
matmul of the kernel with the input's shifted copies stacked on the channel axis (im2col):
would the matmul formulation pay for the forward pass (and the input gradient, a
convolution of the same shape) as well?
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lpaae_jax.cpu import conv as conv_lib

BATCH = 64
NHWC = ("NHWC", "HWIO", "NHWC")


def median_seconds(fn, *args, repeats=5):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def layer_shapes(width):
  """(kernel, stride, in channels, out channels, input size) of the networks' convs."""
  w = width
  return [(3, 1, 3, w, 32), (3, 1, w, w, 32), (3, 2, w, 2 * w, 32), (1, 1, w, 2 * w, 16),
          (3, 1, 2 * w, 2 * w, 16), (3, 1, 4 * w, 4 * w, 8), (3, 1, 8 * w, 8 * w, 4),
          (2, 1, 2 * w, w, 16), (4, 2, 3, w, 32), (3, 1, w, 3, 32)]


def forward_as_matmul(x, w, strides, pads):
  """The convolution as (B*H'*W', k*k*C_in) @ (k*k*C_in, C_out): im2col by strided slices."""
  kernel = w.shape[0]
  x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  out_h = (x.shape[1] - kernel) // strides[0] + 1
  out_w = (x.shape[2] - kernel) // strides[1] + 1
  columns = [lax.slice(x, (0, i, j, 0), (x.shape[0], i + strides[0] * (out_h - 1) + 1,
                                         j + strides[1] * (out_w - 1) + 1, x.shape[3]),
                       (1, strides[0], strides[1], 1))
             for i in range(kernel) for j in range(kernel)]
  return jnp.concatenate(columns, axis=-1) @ w.reshape(-1, w.shape[-1])


def main():
  rng = np.random.default_rng(0)
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, batch {BATCH}, ms")
  print(f"{'kernel':>6}{'stride':>7}{'in':>5}{'out':>5}{'size':>5}{'forward':>9}"
        f"{'XLA dW':>9}{'matmul dW':>11}{'speed-up':>10}  matmul chosen  forward as matmul")
  for width in (8, 16, 32, 64):
    for kernel, stride, cin, cout, size in layer_shapes(width):
      x = jnp.asarray(rng.normal(size=(BATCH, size, size, cin)), jnp.float32)
      w = jnp.asarray(rng.normal(size=(kernel, kernel, cin, cout)), jnp.float32)
      strides = (stride, stride)
      pads = tuple(lax.padtype_to_pads((size, size), (kernel, kernel), strides, "SAME"))
      forward = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, strides, pads,
                                                              dimension_numbers=NHWC))
      output_grad = jnp.asarray(rng.normal(size=forward(x, w).shape), jnp.float32)
      xla = jax.jit(lambda x, g: jax.vjp(lambda k: forward(x, k), w)[1](g)[0])
      matmul = jax.jit(lambda x, g: conv_lib.kernel_gradient(x, g, w.shape, strides, pads))
      np.testing.assert_allclose(matmul(x, output_grad), xla(x, output_grad), rtol=1e-3,
                                 atol=1e-3 * float(jnp.abs(xla(x, output_grad)).max()))
      seconds = [median_seconds(forward, x, w), median_seconds(xla, x, output_grad),
                 median_seconds(matmul, x, output_grad)]
      chosen = conv_lib.matmul_kernel_gradient_is_faster(x.shape, w.shape, strides, pads)
      im2col = jax.jit(lambda x, w: forward_as_matmul(x, w, strides, pads))
      np.testing.assert_allclose(im2col(x, w), forward(x, w), rtol=1e-3,
                                 atol=1e-3 * float(jnp.abs(forward(x, w)).max()))
      print(f"{kernel:>6}{stride:>7}{cin:>5}{cout:>5}{size:>5}"
            + "".join(f"{1e3 * s:9.2f}" for s in seconds[:2])
            + f"{1e3 * seconds[2]:11.2f}{seconds[1] / seconds[2]:10.2f}  {str(chosen):13}"
            + f"{1e3 * median_seconds(im2col, x, w):9.2f}", flush=True)


if __name__ == "__main__":
  main()
