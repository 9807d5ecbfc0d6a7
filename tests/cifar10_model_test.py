"""configs/cifar10.py's model at test scale on real CIFAR-10 (width 8, 60 iterations): the
autoencoder reconstructs. experiments/cifar10_fidelity measures the same
model at CPU scale."""

import jax
import numpy as np

import lpaae_jax
from experiments.cifar10_fidelity import run as fidelity_run
from lpaae_jax import evaluate
from lpaae_jax import input_pipeline
from lpaae_jax import train_steps
from tests.helpers import RUN_FAST_COMPILER_OPTIONS, tiny_config

FULL_XLA_OPTIMIZATION = True  # the run's compiled steps run fast (tests/helpers.py)

# Measured (500 test images, mean image 0.231): reconstruction MSE 0.151 after 60
# iterations, 0.150 / 0.153 / 0.155 after 100 / 140 / 200.
STEPS = 60


def test_cifar10_model_reconstructs_real_images(real_data_dir):
  config = tiny_config("none", "learned", **{
      "dataset": "cifar10", "model.channels": 3, "data_dir": str(real_data_dir),
      "download": False, **fidelity_run.cifar10_defaults(),
      "model.width": 8, "model.code_dim": 32, "model.noise_dim": 32, "batch_size": 32,
      "optim.learning_rate": 1e-3})
  steps = lpaae_jax.make_train_steps(config)
  states = lpaae_jax.create_states(config, jax.random.key(0))
  train_key = jax.random.key(1)
  for step, batch in enumerate(input_pipeline.create_train_iterator(config, end_step=STEPS)):
    aae_key, prior_key = train_steps.iteration_keys(train_key, step)
    if step == 0:
      aae_step = steps.aae_phase.lower(states, batch, aae_key).compile(
          RUN_FAST_COMPILER_OPTIONS)
      prior_step = steps.prior_phase.lower(states, batch, prior_key).compile(
          RUN_FAST_COMPILER_OPTIONS)
    states, _ = aae_step(states, batch, aae_key)
    states, _ = prior_step(states, batch, prior_key)
  states = evaluate.recalibrated(config, states)
  images, _ = input_pipeline.load_split_arrays(config, "test", num=500)
  reconstruction_mse = float(np.mean((np.asarray(lpaae_jax.reconstruct(states, images))
                                      - images)**2))
  mean_image_mse = float(np.mean((images - images.mean(axis=0))**2))
  print(f"\nreconstruction MSE {reconstruction_mse:.3f}; predicting the mean test image: "
        f"{mean_image_mse:.3f}")
  assert reconstruction_mse < 0.75 * mean_image_mse
