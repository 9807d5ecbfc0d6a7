"""CIFAR-10 at paper scale (w=64, batch 64, 100k iterations).

The config itself is lpaae_jax/configs/cifar10.py, installed with the package (its docstring
gives the command, time and expected result); this file lets `--config=configs/cifar10.py`
name it from a checkout.
"""

from lpaae_jax.configs.cifar10 import get_config  # pylint: disable=unused-import
