"""cpu/conv.py's convolution: XLA's forward and input gradient, the kernel gradient as per-tap
matmuls (the same sum, reassociated), Winograd F(4x4, 3x3) convolutions and the thin
convolutions of the layers with image channels, checked against lax's on every
configuration the models use, and lax itself wherever no formulation is used."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from lpaae_jax import backend
from lpaae_jax import models
from lpaae_jax.cpu import conv as conv_lib

NHWC = ("NHWC", "HWIO", "NHWC")
RTOL = 2e-5  # float32 sums over batch x positions in another order
# Winograd F(4x4, 3x3) in float32: its transforms' coefficients (up to 8, down to 1/24)
# round to ~1e-5 of the output's scale (winograd_layers_cpu.txt: at most 2e-5).
WINOGRAD_TOL = 1e-4


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


def _ours_and_lax(convolution, input_shape, features):
  """Forward and both gradients (of a non-linear loss) of a SAME 3x3 conv by `convolution`
  (one of cpu/conv.py's formulations) and by lax."""
  x, w = _arrays(input_shape, (3, 3, input_shape[-1], features), seed=3)
  def results(conv):
    loss = lambda x_, w_: jnp.sum(jnp.sin(conv(x_, w_)))
    return (jax.jit(conv)(x, w), *jax.jit(jax.grad(loss, (0, 1)))(x, w))
  lax_same = lambda x_, w_: lax.conv_general_dilated(x_, w_, (1, 1), "SAME",
                                                     dimension_numbers=NHWC)
  return results(convolution), results(lax_same)


def _assert_close_to_scale(got, expected, tol):
  np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * float(jnp.abs(expected).max()))


@pytest.mark.parametrize("convolution,tol,input_shape,features", [
    (conv_lib.winograd_conv, WINOGRAD_TOL, (3, 8, 8, 5), 7),    # two tiles a side
    (conv_lib.winograd_conv, WINOGRAD_TOL, (2, 4, 12, 6), 4),   # one tile high, three wide
    (conv_lib.winograd_conv, WINOGRAD_TOL, (2, 16, 16, 3), 2),  # the inner tiles' overlaps
    # MNIST's first and last layers: image channels in (patches, one matmul) and out (tap
    # outputs, shifted sum); CIFAR-10's on a map that is not square; thin both ways.
    (conv_lib.thin_conv, RTOL, (3, 8, 8, 1), 8),
    (conv_lib.thin_conv, RTOL, (3, 8, 8, 8), 1),
    (conv_lib.thin_conv, RTOL, (2, 5, 7, 3), 16),
    (conv_lib.thin_conv, RTOL, (2, 5, 7, 16), 3),
    (conv_lib.thin_conv, RTOL, (2, 6, 6, 2), 2),
])
def test_formulation_matches_lax_forward_and_both_gradients(convolution, tol, input_shape,
                                                            features):
  ours, theirs = _ours_and_lax(convolution, input_shape, features)
  for got, expected in zip(ours, theirs):
    assert got.shape == expected.shape
    _assert_close_to_scale(got, expected, tol)


def test_winograd_is_what_the_rule_picks_and_only_there():
  x, w = _arrays((2, 8, 8, 128), (3, 3, 128, 128), seed=4)
  jaxpr = lambda conv, *arrays: str(jax.make_jaxpr(
      lambda x_, w_: conv(x_, w_, (1, 1), "SAME", dimension_numbers=NHWC))(*arrays))
  assert "custom_vjp_call" in jaxpr(conv_lib.conv_general_dilated, x, w)
  assert "dot_general" in jaxpr(conv_lib.conv_general_dilated, x, w)
  # bfloat16 keeps XLA's convolution (the rule was measured, and rounding bounded, in float32).
  bf16 = jaxpr(conv_lib.conv_general_dilated, x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
  assert "custom_vjp_call" not in bf16 and "conv_general_dilated" in bf16


@pytest.mark.parametrize("convolution,input_shape,features", [
    (conv_lib.winograd_conv, (4, 8, 8, 3), 5),   # the reshapes between images and tiles
    (conv_lib.thin_conv, (4, 8, 8, 8), 3),       # the tap outputs' reshape
    (conv_lib.thin_conv, (4, 8, 8, 3), 8),
])
def test_cpu_formulations_keep_the_batch_sharding_of_a_mesh(convolution, input_shape,
                                                           features):
  """Under the training loop's mesh (batch split on "data", the kernel replicated) the
  formulations' reshapes keep the batch's sharding; results match without a mesh."""
  x, w = _arrays(input_shape, (3, 3, input_shape[-1], features), seed=5)
  mesh = jax.make_mesh((1,), ("data",))
  loss = lambda x_, w_: jnp.sum(jnp.sin(convolution(x_, w_)))
  sharded = (jax.device_put(x, NamedSharding(mesh, PartitionSpec("data"))),
             jax.device_put(w, NamedSharding(mesh, PartitionSpec())))
  got = jax.jit(jax.value_and_grad(loss, (0, 1)))(*sharded)
  expected = jax.jit(jax.value_and_grad(loss, (0, 1)))(x, w)
  for got_leaf, expected_leaf in zip(jax.tree_util.tree_leaves(got),
                                     jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(got_leaf, expected_leaf, rtol=1e-6, atol=1e-6)
  assert got[1][0].sharding.spec[0] == "data"  # the input gradient stays split on the batch


def test_resblock_with_winograd_matches_plain_flax():
  """A ResBlock at width 64's 8x8 level size (128 channels here, 8x8 maps): its 3x3 convs
  take Winograd with the CPU fast paths; output and parameter gradients match nn.Conv's."""
  x = jnp.asarray(np.random.default_rng(6).normal(size=(2, 8, 8, 128)), jnp.float32)
  fast, plain = (models.ResBlock(128, "none", conv=backend.Backend(cpu=on).conv)
                 for on in (True, False))
  variables = plain.init(jax.random.key(0), x)
  assert "custom_vjp_call" in str(jax.make_jaxpr(lambda v: fast.apply(v, x))(variables))
  loss = lambda block: lambda v: jnp.sum(jnp.sin(block.apply(v, x)))
  _assert_close_to_scale(fast.apply(variables, x), plain.apply(variables, x), WINOGRAD_TOL)
  for got, expected in zip(jax.tree_util.tree_leaves(jax.grad(loss(fast))(variables)),
                           jax.tree_util.tree_leaves(jax.grad(loss(plain))(variables))):
    _assert_close_to_scale(got, expected, WINOGRAD_TOL)


def test_winograd_rule_follows_the_measurements():
  # Measured (batch 64, this CPU, winograd_layers_cpu.txt): 1.5-1.9x faster with width 64's
  # 128+ channels on maps of 16x16 or smaller, level (0.94-1.23x) with 128-256 channels on
  # 8x8 and 4x4 maps; slower on 32x32 maps and below 128 channels.
  same_3x3 = ((1, 1), (1, 1))
  rule = conv_lib.winograd_is_faster
  assert rule((64, 16, 16, 128), (3, 3, 128, 128), (1, 1), same_3x3)
  assert rule((64, 8, 8, 256), (3, 3, 256, 256), (1, 1), same_3x3)
  assert rule((64, 4, 4, 512), (3, 3, 512, 512), (1, 1), same_3x3)
  assert not rule((64, 32, 32, 64), (3, 3, 64, 64), (1, 1), same_3x3)
  assert not rule((64, 8, 8, 64), (3, 3, 64, 64), (1, 1), same_3x3)
  assert not rule((64, 32, 32, 256), (3, 3, 256, 256), (1, 1), same_3x3)
  assert not rule((64, 6, 6, 256), (3, 3, 256, 256), (1, 1), same_3x3)  # not whole tiles
  assert not rule((64, 16, 16, 128), (3, 3, 128, 256), (2, 2), ((0, 1), (0, 1)))
  assert not rule((64, 8, 8, 256), (3, 3, 256, 256), (1, 1), ((0, 0), (0, 0)))  # VALID
  assert not rule((64, 8, 8, 256), (1, 1, 256, 256), (1, 1), ((0, 0), (0, 0)))


def test_thin_conv_is_what_the_rule_picks_and_only_there():
  jaxpr = lambda x, w: str(jax.make_jaxpr(lambda x_, w_: conv_lib.conv_general_dilated(
      x_, w_, (1, 1), "SAME", dimension_numbers=NHWC))(x, w))
  for input_shape, kernel_shape in (((2, 8, 8, 3), (3, 3, 3, 16)),
                                    ((2, 8, 8, 16), (3, 3, 16, 3))):
    x, w = _arrays(input_shape, kernel_shape, seed=8)
    assert "custom_vjp_call" in jaxpr(x, w) and "conv_general_dilated" not in jaxpr(x, w)
    # bfloat16 keeps XLA's convolution (the rule was measured in float32).
    bf16 = jaxpr(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
    assert "custom_vjp_call" not in bf16 and "conv_general_dilated" in bf16


def test_thin_rule_follows_the_measurements():
  # Measured (batch 64, 32x32, this CPU, thin_layers_cpu.txt): 1.3-3.4x faster with 1 or 3
  # image channels in or out at widths 8-64; 16 -> 16 about 4x slower.
  same_3x3 = ((1, 1), (1, 1))
  rule = conv_lib.thin_conv_is_faster
  for in_features, features in ((1, 8), (8, 1), (3, 16), (16, 3), (3, 64), (64, 3)):
    assert rule((64, 32, 32, in_features), (3, 3, in_features, features), (1, 1), same_3x3)
  assert not rule((64, 32, 32, 16), (3, 3, 16, 16), (1, 1), same_3x3)
  assert not rule((64, 32, 32, 3), (4, 4, 3, 64), (2, 2), ((1, 1), (1, 1)))  # D_I's first
  assert not rule((64, 32, 32, 3), (3, 3, 3, 64), (1, 1), ((0, 0), (0, 0)))  # VALID
  assert not rule((64, 32, 32, 3), (1, 1, 3, 64), (1, 1), ((0, 0), (0, 0)))
