"""CIFAR-10 at CPU scale: the paper table's six runs on a 2-core CPU (experiments/paper_table).

The config itself is lpaae_jax/configs/cifar10_cpu.py, installed with the package (its docstring
gives the command, time and expected result); this file lets `--config=configs/cifar10_cpu.py`
name it from a checkout.
"""

from lpaae_jax.configs.cifar10_cpu import get_config  # pylint: disable=unused-import
