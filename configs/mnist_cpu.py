"""MNIST at CPU scale: the quick start, and the runs of experiments/mnist_cpu_study.

The config itself is lpaae_jax/configs/mnist_cpu.py, installed with the package (its docstring
gives the command, time and expected result); this file lets `--config=configs/mnist_cpu.py`
name it from a checkout.
"""

from lpaae_jax.configs.mnist_cpu import get_config  # pylint: disable=unused-import
