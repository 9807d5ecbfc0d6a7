"""The configs, installed with the package (the checkout's `configs/*.py` name these files).

  from lpaae_jax import configs
  config = configs.get_config("cifar10", "supervised,fixed")

Each module's docstring gives its command, time and expected result. The commands take a
file path, which `configs.path(name)` gives an installed user:

  lpaae-train --workdir=runs/mnist --config="$(python -c \
      'from lpaae_jax import configs; print(configs.path("mnist"))')":supervised
"""

import importlib
import os
from typing import Optional

import ml_collections

NAMES = ("default", "mnist", "mnist_cpu", "cifar10", "cifar10_cpu", "svhn", "test")


def _checked(name: str) -> str:
  if name not in NAMES:
    from lpaae_jax.config_validation import ConfigError  # pylint: disable=g-import-not-at-top
    raise ConfigError(f"No config named {name!r}: choose from {', '.join(NAMES)}.")
  return name


def get_config(name: str, variant: Optional[str] = None) -> ml_collections.ConfigDict:
  """configs/<name>.py's get_config(variant), e.g. ("cifar10", "supervised")."""
  return importlib.import_module(f"lpaae_jax.configs.{_checked(name)}").get_config(variant)


def path(name: str) -> str:
  """The file of config `name`, for `--config=<path>[:variant]`."""
  return os.path.join(os.path.dirname(__file__), f"{_checked(name)}.py")
