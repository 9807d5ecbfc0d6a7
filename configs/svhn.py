"""SVHN (tfds `svhn_cropped`, 32x32 colour); not in the paper, same recipe as CIFAR-10.

The config itself is lpaae_jax/configs/svhn.py, installed with the package (its docstring
gives the command, time and expected result); this file lets `--config=configs/svhn.py`
name it from a checkout.
"""

from lpaae_jax.configs.svhn import get_config  # pylint: disable=unused-import
