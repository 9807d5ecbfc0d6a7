"""Each loss against a hand-computed value on small arrays."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from lpaae_jax import losses


def _log_sigmoid(x):
  return -math.log1p(math.exp(-x))


def test_discriminator_loss_matches_hand_value():
  real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
  expected = (-(_log_sigmoid(2.0) + _log_sigmoid(-1.0)) / 2
              - (_log_sigmoid(-0.5) + _log_sigmoid(3.0)) / 2)
  assert float(losses.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)
  # Several fake batches add up.
  extra = jnp.array([0.0])
  assert float(losses.discriminator_loss(real, fake, extra)) == pytest.approx(
      expected + math.log(2.0), rel=1e-6)


def test_generator_losses():
  fake = jnp.array([1.0, -2.0])
  non_saturating = -(_log_sigmoid(1.0) + _log_sigmoid(-2.0)) / 2  # -log D
  minimax = (math.log1p(-1 / (1 + math.exp(-1.0))) + math.log1p(-1 / (1 + math.exp(2.0)))) / 2
  assert float(losses.generator_loss(fake)) == pytest.approx(non_saturating, rel=1e-6)
  assert float(losses.generator_loss(fake, "minimax")) == pytest.approx(minimax, rel=1e-6)
  with pytest.raises(ValueError, match="gan_loss"):
    losses.generator_loss(fake, "wasserstein")


def test_stable_for_extreme_logits():
  huge = jnp.array([1e4, -1e4])
  assert np.isfinite(float(losses.discriminator_loss(huge, huge)))
  assert np.isfinite(float(losses.generator_loss(huge, "minimax")))


def test_reconstruction_losses():
  a = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  b = jnp.array([[1.0, 0.0], [3.0, 7.0]])
  assert float(losses.feature_reconstruction_loss(a, b)) == pytest.approx((4 + 9) / 4)
  assert float(losses.pixel_reconstruction_loss(a, b)) == pytest.approx((4 + 9) / 4)


def test_feature_loss_target_carries_no_gradient():
  import jax
  grad_real = jax.grad(lambda r: losses.feature_reconstruction_loss(r, jnp.ones(3)))(jnp.zeros(3))
  grad_rec = jax.grad(lambda f: losses.feature_reconstruction_loss(jnp.zeros(3), f))(jnp.ones(3))
  np.testing.assert_array_equal(grad_real, 0.0)
  np.testing.assert_allclose(grad_rec, 2.0 / 3.0)


def test_info_loss_is_cross_entropy():
  q_logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  s = jnp.array([0, 2])
  p0 = math.exp(2.0) / (math.exp(2.0) + 2)
  expected = (-math.log(p0) + math.log(3.0)) / 2
  assert float(losses.info_loss(q_logits, s)) == pytest.approx(expected, rel=1e-6)


def test_mean_probability():
  assert float(losses.mean_probability(jnp.array([0.0, 0.0]))) == pytest.approx(0.5)
