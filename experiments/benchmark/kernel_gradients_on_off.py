r"""`python -m lpaae_jax.benchmark` with conv.py's matmul kernel gradients on, off, or chosen
by the rule used until 2026-12-04; or with its Winograd or thin convolutions off.

  python -m experiments.benchmark.kernel_gradients_on_off \
      {on|off|until_2026_12_04|winograd_off|thin_off|sub_pixel_off} \
      --config=configs/cifar10.py:supervised [--config.model.width=16] --loop_steps=0

"on" is the code as it is (`conv.matmul_kernel_gradient_is_faster`: 1x1 kernels only;
`conv.winograd_is_faster`); "off" makes the first say False for every layer (XLA's kernel
gradients everywhere, the rest of the CPU fast paths kept); "until_2026_12_04" restores the
earlier rule (every output map of 16x16 or more with 32+ output channels); "winograd_off"
makes the second say False (XLA's 3x3 convolutions everywhere); "thin_off" makes
`conv.thin_conv_is_faster` say False (XLA's convolutions for the layers with image
channels); "sub_pixel_off" differentiates the decoder's sub-pixel transposed convs
through their four 2x2 convs, as until 2026-12-06 (not by the stride-2 input gradient of
`conv.sub_pixel_conv_transpose`). Alternate them, one at a time, to compare whole iterations
(`matmul_kernel_gradients_on_off_cpu.txt`; `fast_path_ab.sh` -> `winograd_ab_cpu.txt`,
`thin_ab_cpu.txt`, `sub_pixel_ab_cpu.txt`).
"""

import sys

from lpaae_jax import benchmark
from lpaae_jax import conv


def _rule_until_2026_12_04(input_shape, kernel_shape, strides, padding):
  out_size = [(input_shape[1 + a] + sum(padding[a]) - kernel_shape[a]) // strides[a] + 1
              for a in range(2)]
  return out_size[0] * out_size[1] >= 16 * 16 and kernel_shape[3] >= 32


def _never(*args, **kwargs):
  del args, kwargs
  return False


# name -> (conv.py attribute replaced: a rule, or sub_pixel_conv_transpose; its replacement);
# "on" replaces none.
RULES = {"on": (None, None), "off": ("matmul_kernel_gradient_is_faster", _never),
         "until_2026_12_04": ("matmul_kernel_gradient_is_faster", _rule_until_2026_12_04),
         "winograd_off": ("winograd_is_faster", _never),
         "thin_off": ("thin_conv_is_faster", _never),
         "sub_pixel_off": ("sub_pixel_conv_transpose", conv._sub_pixel_forward)}  # pylint: disable=protected-access


if __name__ == "__main__":
  if len(sys.argv) < 2 or sys.argv[1] not in RULES:
    sys.exit("usage: python -m experiments.benchmark.kernel_gradients_on_off "
             f"{{{'|'.join(RULES)}}} [benchmark flags]")
  name, replacement = RULES[sys.argv.pop(1)]
  if name is not None:
    setattr(conv, name, replacement)
  benchmark.run()
