r"""Every convolution of the networks at one width, ours against PyTorch's, layer by layer.

  python -m experiments.benchmark.conv_layers_side_by_side --torch_python=TORCH_VENV/bin/python \
      [--width=16] > experiments/benchmark/conv_layers_w16_cpu.txt

For each convolution shape of the encoder, decoder (the sub-pixel 2x2 convs of the
transposed ones) and image discriminator at `--width` (32x32 inputs, batch 64, float32):
the forward pass and forward + input and kernel gradients, ours jitted as the train steps
compile them (`Backend.compiler_options` of the CPU fast paths; plain `lax` convolutions)
and PyTorch eager's (`conv_layers_torch.py` in its own venv), median ms of 5. The totals
say whether an iteration's gap to PyTorch (`torch_side_by_side`) is in the convolutions.
"""

import json
import os
import subprocess

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from experiments.benchmark.kernel_gradients import median_seconds
from lpaae_jax import backend

_TORCH_PYTHON = flags.DEFINE_string("torch_python", None, "python of a venv with torch.")
_WIDTH = flags.DEFINE_integer("width", 16, "model.width (CIFAR-10 networks, 32x32 inputs).")
_HERE = os.path.dirname(os.path.abspath(__file__))


def conv_shapes(width: int) -> list[tuple[int, ...]]:
  """(kernel, stride, in, out, size, pad_low, pad_high) of every conv, in network order."""
  shapes = [(3, 1, 3, width, 32, 1, 1)] + [(3, 1, width, width, 32, 1, 1)] * 2  # encoder
  channels = width
  for size in (32, 16, 8):  # down blocks: 3x3 stride 2, 3x3, 1x1 skip on the pooled map
    shapes += [(3, 2, channels, 2 * channels, size, 0, 1),
               (3, 1, 2 * channels, 2 * channels, size // 2, 1, 1),
               (1, 1, channels, 2 * channels, size // 2, 0, 0)]
    channels *= 2
  for size in (4, 8, 16):  # up blocks: four sub-pixel 2x2 convs, 3x3, 1x1 skip (pre-upsampling)
    shapes += ([(2, 1, channels, channels // 2, size, 1, 0)] * 4
               + [(3, 1, channels // 2, channels // 2, 2 * size, 1, 1),
                  (1, 1, channels, channels // 2, size, 0, 0)])
    channels //= 2
  shapes.append((3, 1, width, 3, 32, 1, 1))  # decoder output
  shapes += [(4, 2, 3, width, 32, 1, 1), (4, 2, width, 2 * width, 16, 1, 1),  # D_I
             (4, 2, 2 * width, 4 * width, 8, 1, 1)]
  return shapes


def _median_ms(fn, *args):
  return 1e3 * median_seconds(fn, *args)


def ours(shapes) -> list[dict]:
  options = dict(backend.from_fast_paths("auto").compiler_options()) or None
  rng = np.random.default_rng(0)
  rows = []
  for kernel, stride, cin, cout, size, low, high in shapes:
    x = jnp.asarray(rng.standard_normal((64, size, size, cin), np.float32))
    w = jnp.asarray(rng.standard_normal((kernel, kernel, cin, cout), np.float32))
    conv = lambda x_, w_: lax.conv_general_dilated(  # pylint: disable=cell-var-from-loop
        x_, w_, (stride, stride), ((low, high), (low, high)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    g = jnp.ones_like(conv(x, w))

    def forward_and_gradients(x_, w_):
      y, vjp = jax.vjp(conv, x_, w_)  # pylint: disable=cell-var-from-loop
      return y, vjp(g)  # pylint: disable=cell-var-from-loop

    rows.append({"forward_ms": _median_ms(jax.jit(conv, compiler_options=options), x, w),
                 "all_ms": _median_ms(jax.jit(forward_and_gradients,
                                              compiler_options=options), x, w)})
  return rows


def main(argv):
  del argv
  shapes = conv_shapes(_WIDTH.value)
  theirs = json.loads(subprocess.run(
      [_TORCH_PYTHON.value, os.path.join(_HERE, "conv_layers_torch.py"), json.dumps(shapes)],
      check=True, capture_output=True, text=True).stdout)
  mine = ours(shapes)
  print(f"width {_WIDTH.value}, batch 64, float32, jax {jax.__version__} "
        f"({dict(backend.from_fast_paths('auto').compiler_options())}) against PyTorch "
        "eager; ms, median of 5")
  print(f"{'conv':<22}{'ours fwd':>10}{'torch fwd':>10}{'ours all':>10}{'torch all':>10}")
  for shape, a, b in zip(shapes, mine, theirs):
    kernel, stride, cin, cout, size = shape[:5]
    name = f"{kernel}x{kernel} s{stride} {cin}->{cout} @{size}"
    print(f"{name:<22}{a['forward_ms']:>10.2f}{b['forward_ms']:>10.2f}{a['all_ms']:>10.2f}"
          f"{b['all_ms']:>10.2f}")
  print(f"{'total':<22}{sum(r['forward_ms'] for r in mine):>10.1f}"
        f"{sum(r['forward_ms'] for r in theirs):>10.1f}{sum(r['all_ms'] for r in mine):>10.1f}"
        f"{sum(r['all_ms'] for r in theirs):>10.1f}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["torch_python"])
  app.run(main)
