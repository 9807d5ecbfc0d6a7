"""SVHN (tfds `svhn_cropped`, 32x32 colour); not in the paper, same recipe as CIFAR-10.

Run:  python -m lpaae_jax.main --config=configs/svhn.py:unsupervised --workdir=runs/svhn
Expected: no reference numbers; the same sample grids and metrics as for CIFAR-10.
"""

from lpaae_jax.configs import default


def get_config(variant=None):
  config = default.get_config(variant)
  config.dataset = "svhn_cropped"
  config.model.channels = 3
  config.num_train_steps = 100_000
  return config
