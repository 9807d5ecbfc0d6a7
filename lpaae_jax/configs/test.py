"""A tiny model for tests and a CPU smoke run (MNIST, w=4, batch 16, 20 steps).

Run:  python -m lpaae_jax.main --config=configs/test.py --workdir=/tmp/lpaae_test
Expected: finishes in about a minute on a laptop CPU; the numbers mean nothing.
"""

from lpaae_jax.configs import default


def get_config(variant=None):
  config = default.get_config(variant)
  config.dataset = "mnist"
  config.model.channels = 1
  config.model.width = 4
  config.model.code_dim = 16
  config.model.noise_dim = 16
  config.model.disc_hidden = 32
  config.model.code_disc_hidden = (32, 32, 16)
  config.batch_size = 16
  config.num_train_steps = 20
  config.log_every_steps = 5
  config.eval_every_steps = 10
  config.checkpoint_every_steps = 10
  config.num_grid_rows = 4
  config.num_reconstructions = 4
  config.num_summary_images = 16
  config.eval.num_samples = 200
  config.eval.num_splits = 2
  config.eval.batch_size = 50
  config.eval.num_real_samples = 200
  config.eval.num_tsne_points = 100
  config.eval.recalibrate_bn_batches = 4
  return config
