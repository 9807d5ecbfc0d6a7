"""The model does what the paper shows, at test scale on real MNIST (tiny networks, a few
hundred iterations): s = j draws digit j in the supervised setting (the label tie), and
the autoencoder reconstructs. experiments/fidelity measures the same at CPU scale."""

import jax
import numpy as np
import pytest

import lpaae_jax
from lpaae_jax.evaluation import disentanglement, judge
from tests.helpers import reconstruction_and_mean_image_mse, tiny_config, train_on_real_data

# Hundreds of iterations of a width-8 model: running, not compiling, is this module's time.
FULL_XLA_OPTIMIZATION = True

STEPS = 400
# configs/test.py grown to width 8, a 32-d code and batch 32, at 5x the default learning
# rate: the cheapest run measured to reconstruct clearly (width 4 with batch 16 stayed at
# the mean-image error; batch 32 needs 400 iterations where batch 64 needed 300, at 2/3 of
# the images and time). Measured: the judge reads s = j as j 0.83 (0.12 without the label
# tie, an option until commit 2b0a9d1), reconstruction MSE 0.153 (the mean image's: 0.210).
SMALL_MODEL = {"model.width": 8, "model.code_dim": 32, "model.noise_dim": 32,
               "batch_size": 32, "optim.learning_rate": 1e-3}


@pytest.fixture(scope="module")
def supervised_run(real_data_dir):
  config = tiny_config("supervised", "learned", data_dir=str(real_data_dir), download=False,
                       **SMALL_MODEL)
  return config, train_on_real_data(config, STEPS)


def _conditional_accuracy(states, judge_dir, num=500):
  s = np.arange(num) % 10
  samples = np.asarray(lpaae_jax.sample(states, jax.random.key(5), num, s=s))
  labels = judge.judge_predict(judge.load_judge(judge_dir, dataset="mnist"), samples)
  return disentanglement.conditional_accuracy(labels, s)


def test_supervised_s_draws_the_digit_of_its_label(supervised_run, trained_judge_dir):
  accuracy = _conditional_accuracy(supervised_run[1], trained_judge_dir)
  print(f"\njudge reads s=j as digit j: {accuracy:.3f}")
  # Without the label tie any permutation of the classes is optimal: chance is 0.1.
  assert accuracy > 0.5


def test_autoencoder_reconstructs_real_digits(supervised_run):
  config, states = supervised_run
  reconstruction_mse, mean_image_mse = reconstruction_and_mean_image_mse(config, states)
  print(f"\nreconstruction MSE {reconstruction_mse:.3f}; predicting the mean test digit: "
        f"{mean_image_mse:.3f}")
  assert reconstruction_mse < 0.8 * mean_image_mse
