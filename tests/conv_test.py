"""conv.py's convolution: XLA's forward and input gradient, the kernel gradient as per-tap
matmuls (the same sum, reassociated), checked against lax's on every configuration the
models use, and lax itself wherever the matmul form is not used."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from lpaae_jax import conv as conv_lib

NHWC = ("NHWC", "HWIO", "NHWC")
RTOL = 2e-5  # float32 sums over batch x positions in another order


def _arrays(input_shape, kernel_shape, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=input_shape), jnp.float32),
          jnp.asarray(rng.normal(size=kernel_shape), jnp.float32))


def _loss(conv, strides, padding, **kwargs):
  # A non-linear loss, so the output gradient is not constant.
  return lambda x, w: jnp.sum(jnp.sin(conv(x, w, strides, padding, dimension_numbers=NHWC,
                                           **kwargs)))


@pytest.mark.parametrize("kernel,stride,padding", [
    (3, 1, "SAME"), (3, 2, "SAME"), (1, 1, "SAME"), (4, 2, "SAME"), (3, 1, "VALID"),
    (2, 1, ((1, 0), (1, 0))), (2, 1, ((0, 1), (1, 0))), (2, 1, ((0, 1), (0, 1))),  # sub-pixel
])
def test_kernel_gradient_equals_lax(kernel, stride, padding):
  x, w = _arrays((3, 9, 9, 5), (kernel, kernel, 5, 7))
  strides = (stride, stride)
  output = lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
  output_grad = jnp.cos(output)
  (expected,) = jax.vjp(lambda w_: lax.conv_general_dilated(x, w_, strides, padding,
                                                             dimension_numbers=NHWC),
                        w)[1](output_grad)
  pads = (lax.padtype_to_pads(x.shape[1:3], w.shape[:2], strides, padding)
          if isinstance(padding, str) else padding)
  got = jax.jit(conv_lib.kernel_gradient, static_argnums=(2, 3, 4))(
      x, output_grad, w.shape, strides, tuple(map(tuple, pads)))
  assert got.shape == w.shape
  np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * float(jnp.abs(expected).max()))


@pytest.mark.parametrize("input_shape,features", [
    ((2, 16, 16, 8), 64),   # a ResBlock's skip projection (channels change)
    ((2, 8, 8, 32), 32),    # a resampling block's projection at the same width
])
def test_matmul_path_matches_lax_forward_and_both_gradients(input_shape, features):
  x, w = _arrays(input_shape, (1, 1, input_shape[-1], features), seed=1)
  strides = (1, 1)
  pads = lax.padtype_to_pads(x.shape[1:3], w.shape[:2], strides, "SAME")
  assert conv_lib.matmul_kernel_gradient_is_faster(x.shape, w.shape, strides, pads)
  ours = _loss(conv_lib.conv_general_dilated, strides, "SAME")
  assert "custom_vjp_call" in str(jax.make_jaxpr(ours)(x, w))
  theirs = _loss(lax.conv_general_dilated, strides, "SAME")
  np.testing.assert_array_equal(jax.jit(ours)(x, w), jax.jit(theirs)(x, w))
  got_x, got_w = jax.jit(jax.grad(ours, (0, 1)))(x, w)
  expected_x, expected_w = jax.jit(jax.grad(theirs, (0, 1)))(x, w)
  np.testing.assert_array_equal(got_x, expected_x)  # XLA's input gradient, unchanged
  np.testing.assert_allclose(got_w, expected_w, rtol=RTOL,
                             atol=RTOL * float(jnp.abs(expected_w).max()))


@pytest.mark.parametrize("input_shape,kernel_shape,kwargs", [
    ((2, 32, 32, 16), (3, 3, 16, 64), {}),                 # 3x3: XLA's is as fast or faster
    ((2, 16, 16, 8), (4, 4, 8, 32), {}),                   # 4x4 (the image discriminator's)
    ((2, 16, 16, 8), (3, 3, 8, 32), {"rhs_dilation": (2, 2)}),
    ((2, 16, 16, 8), (3, 3, 4, 32), {"feature_group_count": 2}),
])
def test_other_convolutions_are_lax_itself(input_shape, kernel_shape, kwargs):
  x, w = _arrays(input_shape, kernel_shape, seed=2)
  ours = _loss(conv_lib.conv_general_dilated, (1, 1), "SAME", **kwargs)
  theirs = _loss(lax.conv_general_dilated, (1, 1), "SAME", **kwargs)
  assert "custom_vjp_call" not in str(jax.make_jaxpr(ours)(x, w))
  for got, expected in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(theirs, (0, 1))(x, w)):
    np.testing.assert_array_equal(got, expected)


def test_rule_follows_the_measurements():
  same = lambda size, k, s: lax.padtype_to_pads((size, size), (k, k), (s, s), "SAME")
  # Measured (batch 64, this CPU, kernel_gradients_cpu_2026-12-04.txt): the 1x1 projections
  # 3-4x faster with the matmul at every width; 3x3, 4x4 and 2x2 layers as fast or faster
  # with XLA's own kernel gradient, and whole iterations at width 64 too.
  assert conv_lib.matmul_kernel_gradient_is_faster((64, 16, 16, 64), (1, 1, 64, 128), (1, 1),
                                                   same(16, 1, 1))
  assert conv_lib.matmul_kernel_gradient_is_faster((64, 8, 8, 16), (1, 1, 16, 32), (1, 1),
                                                   same(8, 1, 1))
  assert not conv_lib.matmul_kernel_gradient_is_faster((64, 32, 32, 64), (3, 3, 64, 64),
                                                       (1, 1), same(32, 3, 1))
  assert not conv_lib.matmul_kernel_gradient_is_faster((64, 32, 32, 3), (4, 4, 3, 64),
                                                       (2, 2), same(32, 4, 2))
  assert not conv_lib.matmul_kernel_gradient_is_faster((64, 16, 16, 128), (2, 2, 128, 64),
                                                       (1, 1), ((1, 0), (1, 0)))
