"""The info terms' augmentation (lpaae_jax/augment.py) against numpy's exact transforms."""

import jax
import jax.numpy as jnp
import numpy as np

from lpaae_jax import augment


def _images(batch=3, size=8, channels=2):
  return jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, size, size, channels)),
                     jnp.float32)


def _same(batch, value):
  return jnp.full((batch,), value, jnp.float32)


def test_identity_map_returns_the_images():
  images = _images()
  out = augment.affine_resample(images, _same(3, 0.0), _same(3, 1.0), jnp.zeros((3, 2)))
  np.testing.assert_allclose(out, images, atol=1e-6)


def test_quarter_turn_is_numpys_counter_clockwise_rot90():
  images = _images()
  out = augment.affine_resample(images, _same(3, np.pi / 2), _same(3, 1.0), jnp.zeros((3, 2)))
  np.testing.assert_allclose(out, np.rot90(np.asarray(images), 1, axes=(1, 2)), atol=1e-5)


def test_whole_pixel_shift_moves_content_and_fills_background():
  images = _images()
  out = augment.affine_resample(images, _same(3, 0.0), _same(3, 1.0),
                                jnp.tile(jnp.array([[1.0, -2.0]]), (3, 1)), background=-1.0)
  expected = np.full(images.shape, -1.0, np.float32)
  expected[:, 1:, :-2] = np.asarray(images)[:, :-1, 2:]
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_random_maps_differ_per_image_keep_the_range_and_pass_gradients():
  images = jnp.tile(_images(batch=1, size=16, channels=1), (4, 1, 1, 1))
  out = augment.random_affine(jax.random.key(0), images)
  assert out.shape == images.shape
  assert float(out.min()) >= -1.0 - 1e-6 and float(out.max()) <= 1.0 + 1e-6
  # Same input, different draws: no two outputs alike.
  flat = np.asarray(out).reshape(4, -1)
  assert min(np.abs(flat[i] - flat[j]).max() for i in range(4) for j in range(i)) > 1e-3
  # Linear in the images: the gradient of a weighted sum is that map's adjoint, non-zero.
  weights = jax.random.normal(jax.random.key(1), images.shape)
  grads = jax.grad(lambda x: jnp.sum(weights * augment.random_affine(jax.random.key(0), x)))(
      images)
  np.testing.assert_allclose(jnp.sum(grads * images),
                             jnp.sum(weights * (out - augment.random_affine(
                                 jax.random.key(0), jnp.zeros_like(images)))), rtol=1e-4)
