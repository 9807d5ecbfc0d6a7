"""MNIST (28x28 gray, padded to 32 with its black background, -1 in [-1, 1]); 30k iterations.

Run:  python -m lpaae_jax.main --config=configs/mnist.py:supervised --workdir=runs/mnist
Expected: Figure-3-style grids where each column is one digit (supervised) or one cluster
(unsupervised); the paper reports no number for MNIST.
"""

from configs import default


def get_config(variant=None):
  config = default.get_config(variant)
  config.dataset = "mnist"
  config.model.channels = 1
  config.num_train_steps = 30_000
  return config
