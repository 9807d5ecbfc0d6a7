"""Forward passes of the networks in a TrainState, as the train steps and inference run them.

Training mode (batch statistics, their updates returned), inference mode (running
averages), and the pass of a network a phase keeps fixed; plus the prior's inputs: the
noise z, the condition s and [z; one-hot s].
"""

from typing import Any, Optional

import jax
import jax.numpy as jnp

from lpaae_jax.models import ModelSpec
from lpaae_jax.states import States, TrainState


def _variables(state: TrainState, params=None) -> dict[str, Any]:
  variables = {"params": state.params if params is None else params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def apply_train(state: TrainState, params, batch_stats, *inputs):
  """Training-mode forward pass with explicit params and batch statistics.

  Returns (outputs, the updated batch statistics); a network without BatchNorm returns
  `batch_stats` unchanged.
  """
  if not batch_stats:
    return state.apply_fn({"params": params}, *inputs, train=True), batch_stats
  outputs, updates = state.apply_fn({"params": params, "batch_stats": batch_stats}, *inputs,
                                    train=True, mutable=["batch_stats"])
  return outputs, updates["batch_stats"]


def apply_eval(state: TrainState, *inputs):
  """Inference-mode forward pass (running BatchNorm averages; nothing updated)."""
  return state.apply_fn(_variables(state), *inputs, train=False)


def apply_fixed(state: TrainState, *inputs, batch_stats: bool):
  """Forward pass of a network the phase keeps fixed: normalised by the batch's own
  statistics (`batch_stats=True`) or by the running averages; the running averages are
  never updated (the batch-statistics pass's updates are dropped)."""
  if batch_stats and state.batch_stats:
    return apply_train(state, state.params, state.batch_stats, *inputs)[0]
  return apply_eval(state, *inputs)


def prior_noise(spec: ModelSpec, key, num: int) -> jax.Array:
  """The prior's noise z: (num, spec.noise_size) draws of N(0, I), as every sampler draws it."""
  return jax.random.normal(key, (num, spec.noise_size), jnp.float32)


def sample_prior_inputs(spec: ModelSpec, key, batch_size: int,
                        labels=None) -> tuple[jax.Array, Optional[jax.Array]]:
  """The prior's inputs: noise z (batch_size, spec.noise_size) and the condition s
  (batch_size,) integer labels, or None for condition 'none'.

  Supervised: s is `labels` (the batch's); unsupervised: s ~ Categorical(num_classes).
  """
  noise_key, s_key = jax.random.split(key)
  noise = prior_noise(spec, noise_key, batch_size)
  if spec.condition == "supervised":
    s = labels
  elif spec.condition == "unsupervised":
    s = jax.random.randint(s_key, (batch_size,), 0, spec.num_classes)
  else:
    s = None
  return noise, s


def prior_input_vector(spec: ModelSpec, noise, s):
  """[z; one-hot s] for a conditional setting, else z. The code generator's input scales
  the one-hot by model.code_generator_s_scale; the fixed prior's code is [z'; one-hot s]."""
  if s is None:
    return noise
  one_hot = jax.nn.one_hot(s, spec.num_classes, dtype=noise.dtype)
  if spec.learned_prior:
    one_hot = one_hot * jnp.asarray(spec.code_generator_s_scale, noise.dtype)
  return jnp.concatenate([noise, one_hot], -1)


def prior_codes_eval(states: States, noise, s):
  """z_c in inference mode: CG([z; s]) for the learned prior, [z'; s] for the fixed one."""
  inputs = prior_input_vector(states.spec, noise, s)
  if states.code_generator is None:
    return inputs
  return apply_eval(states.code_generator, inputs)


def code_discriminator_inputs(spec: ModelSpec, codes, labels):
  """What D_C judges: the code, with the one-hot label appended under the code tie."""
  if not spec.label_conditioned_code_discriminator:
    return codes
  return jnp.concatenate([codes, jax.nn.one_hot(labels, spec.num_classes, dtype=codes.dtype)],
                         -1)
