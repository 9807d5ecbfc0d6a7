r"""XLA's 3x3 convolutions against cpu/conv.py's `thin_conv`, for the layers with image channels.

Run:
  python -m experiments.benchmark.thin_layers > experiments/benchmark/thin_layers_cpu.txt

The encoder's first conv (image channels -> width) and the decoder's last (width -> image
channels) at every width (batch 64, 32x32 maps, float32; 1 channel for MNIST's width 8, 3
for CIFAR-10's), and 16 -> 16 as a control the rule declines: one jitted call computing the
forward pass and both gradients (`jax.vjp`), with XLA's convolution and with
`conv.thin_conv`, compiled with the train steps' CPU compiler options in a process that
keeps freed memory (as training runs). Medians of 5 calls, the two alternated over 3
rounds (`winograd_layers.against_xla`); the ratio is of the medians over rounds. Also the largest deviation of each result
from XLA's, relative to its largest magnitude, and whether `conv.thin_conv_is_faster` picks
the thin formulation. The rule in cpu/conv.py was read off this table.
"""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark.kernel_gradients import BATCH
from experiments.benchmark.winograd_layers import SAME_3X3, against_xla
from lpaae_jax.cpu import compiler
from lpaae_jax.cpu import conv as conv_lib
from lpaae_jax.cpu import malloc

SIZE = 32
# (input channels, output channels): both directions at each width, then the control.
LAYERS = [(1, 8), (8, 1), (3, 16), (16, 3), (3, 32), (32, 3), (3, 64), (64, 3), (16, 16)]


def main():
  malloc.keep_freed_memory()
  rng = np.random.default_rng(0)
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, batch {BATCH}, "
        f"{SIZE}x{SIZE}, float32; forward + input gradient + kernel gradient in one call, ms "
        "(median over rounds)")
  print(f"{'in':>4}{'out':>5}{'XLA':>9}{'thin':>9}{'speed-up':>10}"
        f"{'max deviation y / dx / dk':>28}  thin chosen")
  for in_features, features in LAYERS:
    options = dict(compiler.compiler_options(
        BATCH * SIZE * SIZE * max(in_features, features) * 4))
    x = jnp.asarray(rng.normal(size=(BATCH, SIZE, SIZE, in_features)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, in_features, features))
                         / np.sqrt(9 * in_features), jnp.float32)
    output_grad = jnp.asarray(rng.normal(size=(BATCH, SIZE, SIZE, features)), jnp.float32)
    xla_ms, thin_ms, deviations = against_xla(conv_lib.thin_conv, options, x, kernel,
                                              output_grad)
    chosen = conv_lib.thin_conv_is_faster(x.shape, kernel.shape, (1, 1), SAME_3X3)
    print(f"{in_features:>4}{features:>5}{xla_ms:9.2f}{thin_ms:9.2f}{xla_ms / thin_ms:10.2f}"
          f"{' / '.join(f'{d:.0e}' for d in deviations):>28}  {chosen}", flush=True)


if __name__ == "__main__":
  main()
