"""Eval-mode use of trained states: sampling from the prior, encoding, reconstructing.

All run in inference mode (running BatchNorm averages) and are jit-compiled once per
(model, shape).
"""

import jax
import jax.numpy as jnp
import numpy as np

from lpaae_jax.states import States
from lpaae_jax.train_steps import apply_eval, prior_codes_eval


@jax.jit
def _decode_noise(states: States, noise, s):
  return apply_eval(states.decoder, prior_codes_eval(states, noise, s))


def sample(states: States, key, num: int, s=None) -> jax.Array:
  """`num` images dec(z_c) in [-1, 1] from the prior (learned CG or fixed N(0, I)).

  `s`: int labels (num,) choosing the condition; None draws s uniformly for the
  conditional settings. Must be None for condition='none'.
  """
  spec = states.spec
  if s is not None:
    if not spec.conditional:
      raise ValueError("sample(..., s=...) needs model.condition 'supervised' or "
                       "'unsupervised'; this model has condition='none'.")
    s = np.asarray(s)
    if s.shape != (num,) or not np.issubdtype(s.dtype, np.integer) or s.min() < 0 or (
        s.max() >= spec.num_classes):
      raise ValueError(f"s must be {num} integers in [0, {spec.num_classes}); got shape "
                       f"{s.shape}, dtype {s.dtype}.")
    s = jnp.asarray(s, jnp.int32)
  noise_key, s_key = jax.random.split(key)
  if s is None and spec.conditional:
    s = jax.random.randint(s_key, (num,), 0, spec.num_classes)
  noise = jax.random.normal(noise_key, (num, spec.noise_size), jnp.float32)
  return _decode_noise(states, noise, s)


def decode_noise(states: States, noise, s=None) -> jax.Array:
  """dec(z_c) for given prior noise (num, noise_size) and labels s: fixed-noise grids."""
  return _decode_noise(states, jnp.asarray(noise, jnp.float32),
                       None if s is None else jnp.asarray(s, jnp.int32))


@jax.jit
def _encode(states: States, images):
  return apply_eval(states.encoder, images)


@jax.jit
def _reconstruct(states: States, images):
  return apply_eval(states.decoder, apply_eval(states.encoder, images))


def _check_images(states: States, images):
  images = jnp.asarray(images, jnp.float32)
  if images.ndim != 4 or tuple(images.shape[1:]) != states.spec.image_shape:
    raise ValueError(f"images have shape {tuple(images.shape)}; this model needs "
                     f"(N, {', '.join(map(str, states.spec.image_shape))}) in [-1, 1].")
  return images


def encode(states: States, images) -> jax.Array:
  """Encoder codes (N, code_dim) of images in [-1, 1]."""
  return _encode(states, _check_images(states, images))


def reconstruct(states: States, images) -> jax.Array:
  """dec(enc(x)) of images in [-1, 1]."""
  return _reconstruct(states, _check_images(states, images))
