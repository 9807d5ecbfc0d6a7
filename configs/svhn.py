"""SVHN (tfds `svhn_cropped`, 32x32 colour); not in the paper, same recipe as CIFAR-10.

Run:  python -m lpaae_jax.main --config=configs/svhn.py:unsupervised --workdir=runs/svhn
Expected: no reference numbers; the same sample grids and metrics as for CIFAR-10.
"""

from lpaae_jax.config_files import load_sibling

default = load_sibling(__file__, "default")  # by path: loads from any working directory


def get_config(variant=None):
  config = default.get_config(variant)
  config.dataset = "svhn_cropped"
  config.model.channels = 3
  config.num_train_steps = 100_000
  return config
