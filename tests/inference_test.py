"""Eval-mode inference helpers: precise BatchNorm recalibration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lpaae_jax
from lpaae_jax import forward
from tests.helpers import leaves_equal, random_batch, tiny_config, to_host


def test_recalibrated_running_averages_are_the_final_networks_batch_statistics():
  config = tiny_config("supervised")
  states = lpaae_jax.create_states(config, jax.random.key(0))
  batch, other = random_batch(0), random_batch(1)
  key = jax.random.key(7)
  recalibrated = lpaae_jax.recalibrate_batch_norm(states, [batch], key)

  # Parameters and the image discriminator (not used by inference) are untouched.
  for name in ("encoder", "decoder", "code_generator", "image_discriminator"):
    assert leaves_equal(to_host(getattr(states, name).params),
                        to_host(getattr(recalibrated, name).params)), name
  assert leaves_equal(to_host(states.image_discriminator.batch_stats),
                      to_host(recalibrated.image_discriminator.batch_stats))

  # Recalibrated on one batch, inference mode on that batch is training mode on it.
  def both_modes(state, inputs):
    eval_out = forward.apply_eval(state, inputs)
    train_out = forward.apply_train(state, state.params, state.batch_stats, inputs)[0]
    return np.asarray(eval_out), np.asarray(train_out)

  assert not np.allclose(*both_modes(states.encoder, batch["image"]), atol=1e-3)
  np.testing.assert_allclose(*both_modes(recalibrated.encoder, batch["image"]), atol=2e-5)
  noise, s = forward.sample_prior_inputs(states.spec, jax.random.fold_in(key, 0), 16,
                                             batch["label"])
  prior_inputs = forward.prior_input_vector(states.spec, noise, s)
  np.testing.assert_allclose(*both_modes(recalibrated.code_generator, prior_inputs),
                             atol=2e-5)

  # Over several batches: the mean of each batch's statistics (the encoder's depend on
  # the images only; the prior passes draw per-batch keys).
  single = [lpaae_jax.recalibrate_batch_norm(states, [b], key).encoder.batch_stats
            for b in (batch, other)]
  pair = lpaae_jax.recalibrate_batch_norm(states, [batch, other], key).encoder.batch_stats
  jax.tree_util.tree_map(
      lambda a, b, got: np.testing.assert_allclose((a + b) / 2, got, rtol=1e-5, atol=1e-6),
      *single, pair)

  with pytest.raises(ValueError, match="at least one batch"):
    lpaae_jax.recalibrate_batch_norm(states, [], key)


def test_decoder_statistics_per_input_are_each_inputs_and_both_is_their_mean():
  """decoder_inputs="codes": inference-mode decoding of the batch's encoder codes is
  training-mode decoding of them; "prior" likewise for the prior codes; "both" averages."""
  config = tiny_config("none")
  states = lpaae_jax.create_states(config, jax.random.key(0))
  batch, key = random_batch(0), jax.random.key(7)
  by_input = {inputs: lpaae_jax.recalibrate_batch_norm(states, [batch], key,
                                                       decoder_inputs=inputs)
              for inputs in ("codes", "prior", "both")}
  codes = forward.apply_eval(by_input["codes"].encoder, batch["image"])
  noise, _ = forward.sample_prior_inputs(states.spec, jax.random.fold_in(key, 0), 16)
  prior_codes = forward.apply_eval(by_input["prior"].code_generator, noise)
  for inputs, decoded in (("codes", codes), ("prior", prior_codes)):
    decoder = by_input[inputs].decoder
    np.testing.assert_allclose(
        forward.apply_eval(decoder, decoded),
        forward.apply_train(decoder, decoder.params, decoder.batch_stats, decoded)[0],
        atol=2e-5)
  jax.tree_util.tree_map(
      lambda a, b, both: np.testing.assert_allclose((a + b) / 2, both, rtol=1e-5, atol=1e-6),
      by_input["codes"].decoder.batch_stats, by_input["prior"].decoder.batch_stats,
      by_input["both"].decoder.batch_stats)
  with pytest.raises(ValueError, match="decoder_inputs='images'"):
    lpaae_jax.recalibrate_batch_norm(states, [batch], key, decoder_inputs="images")
