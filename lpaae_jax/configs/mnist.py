"""MNIST (28x28 gray, padded to 32 with its black background, -1 in [-1, 1]); 30k iterations.

Run:  python -m lpaae_jax.main --config=configs/mnist.py:supervised --workdir=runs/mnist
Expected: Figure-3-style grids where each column is one digit (supervised: column j is
digit j) or one cluster (unsupervised); the paper reports no number for MNIST. At width 8
(experiments/): supervised, 3000 iterations, the judge reads s = j as j 0.98; unsupervised,
4500 iterations, Hungarian cluster accuracy 0.92 +- 0.06 over five seeds.
"""

from lpaae_jax.configs import default


def get_config(variant=None):
  config = default.get_config(variant)
  config.dataset = "mnist"
  config.model.channels = 1
  config.num_train_steps = 30_000
  # ours: twice the default. Measured at width 8 (experiments/fidelity): supervised, 1500
  # iterations at 4e-4 reached what 3000 at 2e-4 did (judge accuracy of s = j as digit j
  # 0.95, of reconstructions 0.92), so a CPU budget goes twice as far.
  config.optim.learning_rate = 4e-4
  if config.model.condition == "unsupervised":
    # ours: with no labels, only the info term makes s the digit class. Measured at width 8,
    # 3000 iterations (experiments/fidelity): Hungarian cluster accuracy 0.58 at weight 1,
    # 0.73 at 3, 0.74 at 5 (whose judge FID doubled, 29 -> 53). The learned prior's below.
    config.loss.info_weight = 3.0
  if config.model.condition == "unsupervised" and config.model.prior == "learned":
    # ours: Q reads s from a randomly rotated, scaled and shifted copy of each generated
    # image, so a category cannot be a slant or size style within a group of look-alike
    # digits (4/7/9, 3/5/8), at info weight 0.5; s weighs 3 in the code generator's input
    # and the code adversary 0.3. Measured at width 8, 4500 iterations, seeds 0-4
    # (experiments/fidelity): Hungarian cluster accuracy 0.920 +- 0.062, reconstructions'
    # judge accuracy 0.938 +- 0.010, judge FID 22.0 +- 5.8; without the augmentation (info
    # weight 3) 0.776 +- 0.070; the MNIST study (4500 iterations, seeds 0-2): 0.912 +- 0.067.
    config.model.code_generator_s_scale = 3.0
    config.loss.adv_code_weight = 0.3
    config.loss.info_weight = 0.5
    config.loss.info_augmentation = "affine"
  if config.model.prior == "fixed" and config.model.condition != "supervised":
    # ours: without labels the fixed prior's code adversary at half the learned prior's
    # 0.1. Measured at width 8, 3000 iterations, seeds 0-2 (experiments/mnist_cpu_study):
    # at 0.1 its reconstructions lose the digit (judge accuracy 0.893 unsupervised, 0.899
    # none), at 0.05 they keep it (0.921, 0.917), judge FID 95 -> 107 and 84 -> 89. The
    # learned prior keeps 0.1 in none (0.3 unsupervised, above; at 0.05 its unsupervised
    # clusters fell 0.73 -> 0.65, experiments/fidelity);
    # supervised, the fixed prior's reconstructions reach 0.91 at 0.1.
    config.loss.adv_code_weight = 0.05
  return config
