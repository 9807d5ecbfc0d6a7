"""CIFAR-10 at CPU scale: the paper table's six runs on a 2-core CPU (experiments/paper_table).

Run:  LPAAE_DATA_DIR=../shared/tfds LPAAE_INCEPTION_DIR=../shared/inception \
        bash experiments/paper_table/run_cpu.sh
      (one run: python -m lpaae_jax.main --config=configs/cifar10_cpu.py:supervised ...)
Only the scale differs from configs/cifar10.py: width 16 (paper: 64) and 3,000 iterations
(paper: 100k) at batch 64, since a width-16 iteration takes ~0.5 s on this project's 2-core
CPU (25 min per run, six runs in about three hours with their evaluations); FID from 2,000
samples against the whole 10k test split (Inception on CPU: ~2 min per 2,000). Expected:
experiments/paper_table/results_cpu/results.md; FID at this scale compares runs with each
other only (2,000 samples bias it upwards), not with published FIDs.
"""

from lpaae_jax.configs import cifar10


def get_config(variant=None):
  config = cifar10.get_config(variant)
  config.model.width = 16
  config.num_train_steps = 3000
  # Cheap summaries (sample grid, reconstructions, pixel MSE) every 500 iterations show the
  # run's progress in TensorBoard; the full evaluation runs once, at the end.
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.eval.num_samples = 2000
  config.eval.num_real_samples = None   # the whole 10k test split, its stats cached once
  config.eval.batch_size = 100
  config.eval.num_splits = 10
  config.eval.num_tsne_points = 1000
  return config
