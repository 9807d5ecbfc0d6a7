"""Eval-mode use of trained states: sampling from the prior, encoding, reconstructing.

All run in inference mode (running BatchNorm averages) and are jit-compiled once per
(model, shape). `recalibrate_batch_norm` replaces the running averages by the exact
statistics of the final networks ("precise BN"), which `lpaae_jax.evaluate` does first.
"""

import dataclasses
import functools
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from lpaae_jax.forward import (apply_eval, prior_codes_eval, prior_input_vector, prior_noise,
                               sample_prior_inputs)
from lpaae_jax.states import States


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
  return _decode_noise(states, prior_noise(spec, noise_key, num), s)


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


# ------------------------------------------------------------------------ precise BatchNorm


def _batch_statistics(module, state, inputs):
  """(outputs, this batch's BatchNorm mean/var): a training-mode pass of `module` built
  with momentum 0, whose "running averages" after one update are the batch statistics."""
  outputs, updates = module.apply({"params": state.params, "batch_stats": state.batch_stats},
                                  inputs, train=True, mutable=["batch_stats"])
  return outputs, updates["batch_stats"]


DECODER_INPUTS = ("both", "codes", "prior")


@functools.partial(jax.jit, static_argnames="decoder_inputs")
def _inference_networks_statistics(states: States, batch: dict[str, Any], key,
                                   decoder_inputs: str = "both"):
  """The BatchNorm statistics of one training batch for every network inference uses:
  encoder (real images), code generator (prior inputs) and decoder: over encoder codes
  ("codes"), prior codes ("prior"), or the mean of the two ("both"), its two inputs in
  training, each normalised there by its own batch."""
  spec = states.spec
  exact = dataclasses.replace(spec, bn_momentum=0.0)  # same networks, momentum 0
  images = batch["image"].astype(jnp.float32)
  codes, encoder_stats = _batch_statistics(exact.encoder(), states.encoder, images)
  noise, s = sample_prior_inputs(spec, key, images.shape[0], batch.get("label"))
  prior_codes = prior_input_vector(spec, noise, s)
  stats = {"encoder": encoder_stats}
  if states.code_generator is not None:
    prior_codes, stats["code_generator"] = _batch_statistics(
        exact.code_generator(), states.code_generator, prior_codes)
  _, from_codes = _batch_statistics(exact.decoder(), states.decoder, codes)
  _, from_prior = _batch_statistics(exact.decoder(), states.decoder, prior_codes)
  stats["decoder"] = {"codes": from_codes, "prior": from_prior}.get(
      decoder_inputs, jax.tree_util.tree_map(lambda a, b: (a + b) / 2, from_codes, from_prior))
  return stats


def recalibrate_batch_norm(states: States, batches: Iterable[dict[str, Any]], key, *,
                           decoder_inputs: str = "both") -> States:
  """States whose encoder, code generator and decoder running BatchNorm averages are the
  mean batch statistics of the *final* networks over `batches` (training batches
  {"image", "label"}, batch statistics as in training); parameters are unchanged.

  During training a running average trails the parameters; in short runs the encoder's
  trails far enough to shift its inference-mode codes by several standard deviations
  (experiments/fidelity). The image discriminator is left as it is (inference never uses
  it). `key` draws the prior inputs of the code generator and decoder passes.
  `decoder_inputs`: the decoder's statistics over encoder codes ("codes": what
  `reconstruct` decodes), prior codes ("prior": what `sample` decodes) or the mean of both
  ("both"); training normalises each by its own batch.
  """
  if decoder_inputs not in DECODER_INPUTS:
    raise ValueError(f"decoder_inputs={decoder_inputs!r}; use one of {DECODER_INPUTS}.")
  totals, count = None, 0
  for index, batch in enumerate(batches):
    batch = {name: jnp.asarray(value) for name, value in batch.items()}
    stats = _inference_networks_statistics(states, batch, jax.random.fold_in(key, index),
                                           decoder_inputs=decoder_inputs)
    totals = stats if totals is None else jax.tree_util.tree_map(jnp.add, totals, stats)
    count += 1
  if not count:
    raise ValueError("recalibrate_batch_norm needs at least one batch.")
  means = jax.tree_util.tree_map(lambda total: total / count, totals)
  return states.replace(**{name: getattr(states, name).replace(batch_stats=stats)
                           for name, stats in means.items()})
