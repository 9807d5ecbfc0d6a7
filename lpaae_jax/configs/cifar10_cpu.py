"""CIFAR-10 at CPU scale: configs/cifar10.py's model at width 16 and 3,000 iterations.

Run:  python -m lpaae_jax.main --config=configs/cifar10_cpu.py:supervised --workdir=runs/c10
Only the scale differs from configs/cifar10.py (width 64, 100k iterations). Time on this
project's 2-core CPU: 17-19 min of training per run, then the evaluation (Inception FID
from 2,000 samples: ~5 min more, and ~25 min once for the test split's statistics).
Expected (seed 0, experiments/cifar10_fidelity/results/results.md; the judge metrics with
--config.eval.judge_path=experiments/cifar10_fidelity/judge): `none`, three seeds: Inception
FID 101 +- 3 from 2,000 samples (the same networks as a plain GAN: 94 +- 4), judge FID ~120;
supervised: judge FID 86.2; reconstruction MSE ~0.09; the judge reads sample(s=j) as class j 46% of
the time (supervised). FID at this scale compares runs with each other only
(2,000 samples bias it upwards), not with published FIDs.
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
