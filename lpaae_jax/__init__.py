"""lpaae_jax: Learning Priors for Adversarial Autoencoders in JAX/Flax.

The public API (README, "Library API"):

  create_states(config, key, sharding=None) -> States: every network's TrainState
  make_train_steps(config, *, state_sharding=None, batch_sharding=None) -> TrainSteps:
      the jitted steps with the config's hyperparameters bound: `aae_phase` and
      `prior_phase`, each (states, batch, key) -> (states, metrics), and `iterations`,
      k iterations of both in one call
  recalibrate_batch_norm(states, batches, key) -> States: the final networks' BatchNorm
      statistics over training batches (precise BN), as evaluation uses them
  sample(states, key, num, s=None) -> images from the prior, in inference mode
  decode_noise(states, noise, s=None) -> images of given prior noise (fixed-noise grids)
  encode(states, images) -> codes;  reconstruct(states, images) -> dec(enc(images))
  restore_for_inference(workdir) -> (states, config): a trained run's latest checkpoint,
      BatchNorm recalibrated as evaluation does (imports TensorFlow for the data)

and the types they take and return: States, TrainState, TrainSteps, ModelSpec. The phases
themselves, unjitted, are `lpaae_jax.train_steps.aae_phase_step` and `prior_phase_step`.
"""

import os

__version__ = "0.2.0"

# TensorFlow only feeds tf.data here: its C++ start-up banner (oneDNN, CPU features; INFO)
# would precede our one-line errors. Set before anything imports it; the user's values win.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from lpaae_jax.inference import (decode_noise, encode, recalibrate_batch_norm, reconstruct,
                                 sample)
from lpaae_jax.models import ModelSpec
from lpaae_jax.states import States, TrainState, create_states
from lpaae_jax.train_steps import TrainSteps, make_train_steps

__all__ = [
    "ModelSpec", "States", "TrainState", "TrainSteps", "create_states", "decode_noise",
    "encode", "make_train_steps", "recalibrate_batch_norm", "reconstruct",
    "restore_for_inference", "sample",
]


def __getattr__(name: str):
  # Imported on first use: evaluation loads TensorFlow, which the training steps do not need.
  if name == "restore_for_inference":
    from lpaae_jax.evaluate import restore_for_inference  # pylint: disable=g-import-not-at-top
    return restore_for_inference
  raise AttributeError(f"module 'lpaae_jax' has no attribute {name!r}")
