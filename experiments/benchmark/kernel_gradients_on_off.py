r"""`python -m lpaae_jax.benchmark` with conv.py's matmul kernel gradients on or off.

  python -m experiments.benchmark.kernel_gradients_on_off {on|off} \
      --config=configs/cifar10.py:supervised [--config.model.width=16] --loop_steps=0

"off" makes `conv.matmul_kernel_gradient_is_faster` say False for every layer (XLA's kernel
gradients everywhere, the rest of the CPU fast paths kept); "on" is the code as it is.
Alternate the two, one at a time, to compare whole iterations
(`matmul_kernel_gradients_on_off_cpu.txt`).
"""

import sys

from lpaae_jax import benchmark
from lpaae_jax import conv

if __name__ == "__main__":
  if len(sys.argv) < 2 or sys.argv[1] not in ("on", "off"):
    sys.exit("usage: python -m experiments.benchmark.kernel_gradients_on_off {on|off} "
             "[benchmark flags]")
  if sys.argv.pop(1) == "off":
    conv.matmul_kernel_gradient_is_faster = lambda *args, **kwargs: False
  benchmark.run()
