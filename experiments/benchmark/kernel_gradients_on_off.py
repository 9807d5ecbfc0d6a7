r"""`python -m lpaae_jax.benchmark` with conv.py's matmul kernel gradients on, off, or chosen
by the rule used until 2026-12-04; or with its Winograd or thin convolutions off; or with
one of its formulations as it was before.

  python -m experiments.benchmark.kernel_gradients_on_off \
      {on|off|until_2026_12_04|winograd_off|thin_off|sub_pixel_off|tiles_by_transpose} \
      --config=configs/cifar10.py:supervised [--config.model.width=16] --loop_steps=0

"on" is the code as it is (`conv.matmul_kernel_gradient_is_faster`: 1x1 kernels only;
`conv.winograd_is_faster`); "off" makes the first say False for every layer (XLA's kernel
gradients everywhere, the rest of the CPU fast paths kept); "until_2026_12_04" restores the
earlier rule (every output map of 16x16 or more with 32+ output channels); "winograd_off"
makes the second say False (XLA's 3x3 convolutions everywhere); "thin_off" makes
`conv.thin_conv_is_faster` say False (XLA's convolutions for the layers with image
channels); "sub_pixel_off" differentiates the decoder's sub-pixel transposed convs
through their four 2x2 convs, as until 2026-12-06 (not by the stride-2 input gradient of
`conv.sub_pixel_conv_transpose`); "tiles_by_transpose" gathers the Winograd tiles by
reshapes and a transpose, as until 2026-12-06 (not by stride-4 slices). Alternate them, one
at a time, to compare whole iterations (`matmul_kernel_gradients_on_off_cpu.txt`;
`fast_path_ab.sh` -> `winograd_ab_cpu.txt`, `thin_ab_cpu.txt`, `sub_pixel_ab_cpu.txt`), or
compile both variants in one process (`in_process_ab.py`).
"""

import contextlib
import sys

import jax.numpy as jnp

from lpaae_jax import benchmark
from lpaae_jax import conv


def _rule_until_2026_12_04(input_shape, kernel_shape, strides, padding):
  out_size = [(input_shape[1 + a] + sum(padding[a]) - kernel_shape[a]) // strides[a] + 1
              for a in range(2)]
  return out_size[0] * out_size[1] >= 16 * 16 and kernel_shape[3] >= 32


def _tile_positions_by_transpose(x, tile):
  """`conv._tile_positions` as until 2026-12-06: reshapes, concatenations (the 6x6 tiles'
  overlap) and one transpose instead of stride-4 slices."""
  reshape = conv._reshape  # pylint: disable=protected-access  (keeps a mesh's batch split)
  batch, height, width, features = x.shape
  tiles_h, tiles_w = (height - tile) // 4 + 1, (width - tile) // 4 + 1
  overlap = tile - 4
  if overlap:  # whole 4-row blocks plus one: a tile is its block and the next one's first rows
    x = jnp.pad(x, ((0, 0), (0, 4 * (tiles_h + 1) - height), (0, 4 * (tiles_w + 1) - width),
                    (0, 0)))
    rows = reshape(x, (batch, tiles_h + 1, 4, x.shape[2], features), 0, 0)
    rows = jnp.concatenate([rows[:, :tiles_h], rows[:, 1:, :overlap]], axis=2)
    tiles = reshape(rows, (batch, tiles_h, tile, tiles_w + 1, 4, features), 0, 0)
    tiles = jnp.concatenate([tiles[:, :, :, :tiles_w], tiles[:, :, :, 1:, :overlap]], axis=4)
  else:
    tiles = reshape(x, (batch, tiles_h, 4, tiles_w, 4, features), 0, 0)
  return reshape(tiles.transpose(2, 4, 0, 1, 3, 5),
                 (tile**2, batch, tiles_h * tiles_w, features), 2, 1)


def _never(*args, **kwargs):
  del args, kwargs
  return False


# name -> (conv.py attribute replaced: a rule, or sub_pixel_conv_transpose; its replacement);
# "on" replaces none.
RULES = {"on": (None, None), "off": ("matmul_kernel_gradient_is_faster", _never),
         "until_2026_12_04": ("matmul_kernel_gradient_is_faster", _rule_until_2026_12_04),
         "winograd_off": ("winograd_is_faster", _never),
         "thin_off": ("thin_conv_is_faster", _never),
         "sub_pixel_off": ("sub_pixel_conv_transpose", conv._sub_pixel_forward),  # pylint: disable=protected-access
         "tiles_by_transpose": ("_tile_positions", _tile_positions_by_transpose)}


@contextlib.contextmanager
def rule_applied(rule: str):
  """conv.py with RULES[rule]'s replacement while the block runs; it acts on the steps
  traced there (a jitted function traced before keeps its trace)."""
  name, replacement = RULES[rule]
  if name is None:
    yield
    return
  original = getattr(conv, name)
  setattr(conv, name, replacement)
  try:
    yield
  finally:
    setattr(conv, name, original)


if __name__ == "__main__":
  if len(sys.argv) < 2 or sys.argv[1] not in RULES:
    sys.exit("usage: python -m experiments.benchmark.kernel_gradients_on_off "
             f"{{{'|'.join(RULES)}}} [benchmark flags]")
  with rule_applied(sys.argv.pop(1)):
    benchmark.run()
