"""A tiny model for tests and a CPU smoke run (MNIST, w=4, batch 16, 20 steps).

The config itself is lpaae_jax/configs/test.py, installed with the package (its docstring
gives the command, time and expected result); this file lets `--config=configs/test.py`
name it from a checkout.
"""

from lpaae_jax.configs.test import get_config  # pylint: disable=unused-import
