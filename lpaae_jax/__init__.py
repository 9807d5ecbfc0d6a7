"""lpaae_jax: Learning Priors for Adversarial Autoencoders in JAX/Flax.

Public API:
  create_states(config, key)            -> States (every network's TrainState)
  make_train_steps(config)              -> (aae_phase_step, prior_phase_step), jitted
  make_multi_step(config)               -> k iterations of both phases in one jitted call
  sample(states, key, num, s=None)      -> images from the prior, eval mode
  encode(states, images), reconstruct(states, images)
  recalibrate_batch_norm(states, batches, key) -> states with the final networks' BatchNorm
                                          statistics (precise BN), as evaluation uses
"""

from lpaae_jax.inference import (decode_noise, encode, recalibrate_batch_norm, reconstruct,
                                 sample)
from lpaae_jax.states import ModelSpec, States, TrainState, create_states
from lpaae_jax.train_steps import (StepHyperparams, aae_phase_step, iteration_keys,
                                   make_multi_step, make_train_steps, prior_phase_step)

__all__ = [
    "ModelSpec", "States", "StepHyperparams", "TrainState", "aae_phase_step", "create_states",
    "decode_noise", "encode", "iteration_keys", "make_multi_step", "make_train_steps",
    "prior_phase_step", "recalibrate_batch_norm", "reconstruct", "sample",
]
