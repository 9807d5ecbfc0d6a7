"""CIFAR-10 at paper scale (w=64, batch 64, 100k iterations).

Run:  python -m lpaae_jax.main --config=configs/cifar10.py --workdir=runs/cifar10
      python -m lpaae_jax.main --config=configs/cifar10.py:supervised,fixed --workdir=...
Expected (DESIGN §5, paper's authors): Inception Score 7.31 (learned prior, `none`) vs 6.37
(fixed prior); supervised 6.52 vs 6.20; unsupervised 6.02 vs 5.73. Not yet reproduced by us.
"""

from lpaae_jax.config_files import load_sibling

default = load_sibling(__file__, "default")  # by path: loads from any working directory


def get_config(variant=None):
  config = default.get_config(variant)
  config.dataset = "cifar10"
  config.model.channels = 3
  config.num_train_steps = 100_000
  return config
