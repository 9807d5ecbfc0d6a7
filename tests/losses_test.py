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


def test_continuous_info_loss_is_the_unit_gaussian_negative_log_likelihood():
  means = jnp.array([[0.0, 1.0], [2.0, 0.0]])
  codes = jnp.array([[1.0, 1.0], [0.0, 0.0]])
  # per example 0.5 * squared distance: 0.5 and 2.0
  assert float(losses.continuous_info_loss(means, codes)) == pytest.approx(1.25)


def test_q_outputs_split_into_the_logits_of_s_and_the_continuous_codes():
  from lpaae_jax import models, train_steps
  spec = models.ModelSpec(condition="unsupervised", num_classes=3, num_continuous_codes=2)
  q_outputs = jnp.array([[2.0, 0.0, 0.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
  s, noise = jnp.array([0, 2]), jnp.array([[0.5, 1.0, 7.0], [1.0, 0.0, 7.0]])
  targets = train_steps._info_targets(spec, noise, s)  # the first two noise dimensions
  expected = (float(losses.info_loss(q_outputs[:, :3], s))
              + float(losses.continuous_info_loss(q_outputs[:, 3:], noise[:, :2])))
  hp = train_steps.StepHyperparams()
  assert float(train_steps._info_term(spec, q_outputs, targets, hp)) == pytest.approx(expected)
  assert expected == pytest.approx(float(losses.info_loss(q_outputs[:, :3], s))
                                   + (0.5 * 4.0 + 0.5 * 1.0) / 2)
  # loss.continuous_info_weight scales the continuous codes' term only.
  weighted = train_steps.StepHyperparams(continuous_info_weight=0.1)
  assert float(train_steps._info_term(spec, q_outputs, targets, weighted)) == pytest.approx(
      float(losses.info_loss(q_outputs[:, :3], s))
      + 0.1 * float(losses.continuous_info_loss(q_outputs[:, 3:], noise[:, :2])))
  without = models.ModelSpec(condition="unsupervised", num_classes=3)
  assert train_steps._info_targets(without, noise, s).continuous is None


def test_mean_probability():
  assert float(losses.mean_probability(jnp.array([0.0, 0.0]))) == pytest.approx(0.5)


def test_cluster_loss_is_minus_the_mutual_information_of_q_on_real_images():
  confident = 50.0 * jnp.eye(4)  # four images, each surely its own class
  assert float(losses.cluster_loss(confident)) == pytest.approx(-math.log(4), abs=1e-5)
  # One class for every image, or no preference for any: no information either way.
  assert float(losses.cluster_loss(50.0 * jnp.eye(4)[jnp.zeros(4, int)])) == pytest.approx(0, abs=1e-5)
  assert float(losses.cluster_loss(jnp.zeros((4, 4)))) == pytest.approx(0, abs=1e-6)
  logits = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  conditional = -np.mean(np.sum(p * np.log(p), -1))
  marginal = -np.sum(p.mean(0) * np.log(p.mean(0)))
  assert float(losses.cluster_loss(logits)) == pytest.approx(conditional - marginal, rel=1e-5)
