"""MNIST (28x28 gray, padded to 32 with its black background, -1 in [-1, 1]); 30k iterations.

The config itself is lpaae_jax/configs/mnist.py, installed with the package (its docstring
gives the command, time and expected result); this file lets `--config=configs/mnist.py`
name it from a checkout.
"""

from lpaae_jax.configs.mnist import get_config  # pylint: disable=unused-import
