"""Differentiable image augmentations (ours, beyond the paper): `loss.info_augmentation`.

With "affine", Q reads the categorical code s (and any continuous codes) from a randomly
rotated, scaled and shifted copy of each generated image, and the generator's info term is
taken through the same transform. A category must then survive small rotations and rescaling,
so it cannot be a slant or size style; digit identity does (experiments/fidelity).
"""

import math

import jax
import jax.numpy as jnp

# The affine family: rotation uniform in +-15 degrees, isotropic scale uniform in [0.9, 1.1],
# shift uniform in +-2 pixels per axis (at 32x32, MNIST's strokes stay inside the frame).
MAX_ROTATION_DEGREES = 15.0
MAX_SCALE_CHANGE = 0.1
MAX_SHIFT_PIXELS = 2.0


def affine_resample(images, angle, scale, shift, *, background: float = -1.0):
  """Each image of `images` (B, H, W, C) rotated by `angle` (B,) radians (counter-clockwise
  as displayed), scaled by `scale` (B,) and moved by `shift` (B, 2) pixels (rows, columns),
  about the centre; bilinear, with `background` where the source lies outside the frame.
  Linear in `images`, so gradients flow back to whatever produced them."""
  _, height, width, _ = images.shape
  centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0], jnp.float32)
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing="ij")
  offsets = jnp.stack([rows, cols], axis=-1) - centre  # (H, W, 2): output pixel - centre

  def transform_one(image, angle, scale, shift):
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    # Output pixel centre + p samples the input at centre + R(-angle) (p - shift) / scale,
    # R in (row, column) coordinates, rows pointing down (so + turns counter-clockwise).
    inverse_rotation = jnp.array([[cos, sin], [-sin, cos]])
    source = (offsets - shift) @ inverse_rotation.T / scale + centre
    coordinates = [source[..., 0], source[..., 1]]

    def resample_channel(channel):
      return jax.scipy.ndimage.map_coordinates(channel, coordinates, order=1, mode="constant",
                                               cval=background)

    return jax.vmap(resample_channel, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(transform_one)(images.astype(jnp.float32), angle.astype(jnp.float32),
                                 scale.astype(jnp.float32), shift.astype(jnp.float32))


def random_affine(key, images, *, background: float = -1.0):
  """`images` under independent random maps of the family above (MNIST's black background)."""
  batch = images.shape[0]
  rotation_key, scale_key, shift_key = jax.random.split(key, 3)
  angle = jax.random.uniform(rotation_key, (batch,), minval=-1.0, maxval=1.0) * (
      MAX_ROTATION_DEGREES * math.pi / 180.0)
  scale = 1.0 + MAX_SCALE_CHANGE * jax.random.uniform(scale_key, (batch,), minval=-1.0,
                                                      maxval=1.0)
  shift = MAX_SHIFT_PIXELS * jax.random.uniform(shift_key, (batch, 2), minval=-1.0,
                                                maxval=1.0)
  return affine_resample(images, angle, scale, shift, background=background)
