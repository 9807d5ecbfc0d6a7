"""The loss terms of DESIGN §3 as small pure functions on logits (numerically stable).

All return float32 scalars averaged over the batch.
"""

import jax
import jax.numpy as jnp
import optax

from lpaae_jax.config_validation import GAN_LOSSES


def _bce(logits, target: float):
  logits = logits.astype(jnp.float32)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)))


def discriminator_loss(real_logits, *fake_logits):
  """BCE(D(real), 1) + sum over fake batches of BCE(D(fake), 0)."""
  return _bce(real_logits, 1.0) + sum(_bce(logits, 0.0) for logits in fake_logits)


def generator_loss(fake_logits, gan_loss: str = "non_saturating"):
  """Loss of the network that makes `fake`, given the discriminator's logits on it.

  non_saturating: BCE(D(fake), 1) = -log D(fake) (default).
  minimax: the paper's literal log(1 - D(fake)) = -BCE(D(fake), 0), minimised.
  """
  if gan_loss == "non_saturating":
    return _bce(fake_logits, 1.0)
  if gan_loss == "minimax":
    return -_bce(fake_logits, 0.0)
  raise ValueError(f"loss.gan_loss={gan_loss!r}; allowed: {GAN_LOSSES}.")


def feature_reconstruction_loss(real_features, reconstructed_features):
  """Learned similarity metric (Larsen et al.): MSE between D_I features of x and x_rec.

  The real image's features are a fixed target (stop_gradient), so only the
  reconstruction path carries gradient.
  """
  target = jax.lax.stop_gradient(real_features.astype(jnp.float32))
  return jnp.mean(jnp.square(reconstructed_features.astype(jnp.float32) - target))


def pixel_reconstruction_loss(images, reconstructions):
  return jnp.mean(jnp.square(reconstructions.astype(jnp.float32) - images.astype(jnp.float32)))


def info_loss(q_logits, s_labels):
  """InfoGAN categorical term: cross-entropy of Q(x) against the code s (integer labels).

  Minimising it maximises the variational lower bound of I(s; x) up to the constant H(s).
  """
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
      q_logits.astype(jnp.float32), s_labels))


def mean_probability(logits):
  """Mean sigmoid probability the discriminator assigns to 'real' (a monitoring metric)."""
  return jnp.mean(jax.nn.sigmoid(logits.astype(jnp.float32)))
