"""A 2-D convolution whose kernel gradient is computed as matmuls on CPU.

XLA:CPU computes a convolution's kernel gradient as a convolution whose window is the whole
feature map. For the 1x1 skip projections that is 3-4x slower than the same gradient as one
matmul with the batch and spatial positions as contraction (for a k x k kernel: a sum over
the taps of (input shifted by the tap)^T @ (output gradient)). For 3x3 and larger kernels
the tap-by-tap matmuls measured slower than XLA's own gradient with the jax of
requirements.txt (`python -m experiments.benchmark.kernel_gradients`; whole iterations in
experiments/README.md), so only 1x1 kernels take them.

`conv_general_dilated` below is a drop-in for `jax.lax.conv_general_dilated` (and
`nn.Conv(conv_general_dilated=...)`): the forward pass and the input gradient are XLA's;
only the kernel gradient is formulated differently (the same sum, reassociated), and only
where that measured faster. Configurations it does not cover (dilation, feature groups,
layouts other than NHWC/HWIO) use lax's. The networks use it only with `config.fast_paths`
on (`auto` on the CPU backend; see `models.cpu_fast_paths`).
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

# flax.linen.Conv and our sub-pixel layer use these layouts.
_NHWC_HWIO = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides: Sequence[int], padding: Any,
                         lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
                         feature_group_count: int = 1, batch_group_count: int = 1,
                         precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated`, with the matmul kernel gradient where it applies."""
  lax_conv = functools.partial(
      lax.conv_general_dilated, lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, batch_group_count=batch_group_count,
      precision=precision, preferred_element_type=preferred_element_type)
  plain = (lhs.ndim == 4 and feature_group_count == 1 and batch_group_count == 1
           and precision is None and preferred_element_type is None
           and all(d == 1 for d in (lhs_dilation or (1, 1)))
           and all(d == 1 for d in (rhs_dilation or (1, 1))))
  if not plain:
    return lax_conv()
  if (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC_HWIO)):
    return lax_conv()
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  padding = tuple((int(low), int(high)) for low, high in padding)
  if any(p < 0 for pair in padding for p in pair):
    return lax_conv()
  strides = tuple(int(s) for s in window_strides)
  if not matmul_kernel_gradient_is_faster(lhs.shape, rhs.shape, strides, padding):
    return lax_conv()
  return _conv(strides, padding, lhs, rhs)


def matmul_kernel_gradient_is_faster(input_shape, kernel_shape, strides, padding) -> bool:
  """Where the tap-by-tap matmuls beat XLA:CPU's kernel gradient (batch 64, this project's
  CPU; `python -m experiments.benchmark.kernel_gradients`, the per-layer timings in
  experiments/benchmark/kernel_gradients_cpu_2026-12-04.txt, whole iterations in
  experiments/README.md): the 1x1 skip projections, 3-4x faster at every width. For 3x3 and
  larger kernels XLA's own kernel gradient measured as fast or faster, layer by layer and in
  whole iterations at width 64, so those keep it."""
  del input_shape, strides, padding  # the measured rule depends on the kernel alone
  return kernel_shape[0] == kernel_shape[1] == 1


def _lax_conv(strides, padding, x, kernel):
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC_HWIO)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _conv(strides, padding, x, kernel):
  return _lax_conv(strides, padding, x, kernel)


def _conv_fwd(strides, padding, x, kernel):
  return _lax_conv(strides, padding, x, kernel), (x, kernel)


def kernel_gradient(x, output_grad, kernel_shape, strides, padding):
  """d(sum(conv(x, k) * output_grad))/dk for an NHWC/HWIO convolution, tap by tap:
  dk[i, j] = sum over (b, y, x) of x_pad[b, s*y + i, s*x + j, :] (outer) output_grad[b, y, x, :]."""
  kernel_h, kernel_w = kernel_shape[:2]
  batch, out_h, out_w, _ = output_grad.shape
  stride_h, stride_w = strides
  x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  out_sharding = _replicated(output_grad)
  rows = []
  for i in range(kernel_h):
    taps = []
    for j in range(kernel_w):
      shifted = lax.slice(x, (0, i, j, 0),
                          (batch, i + stride_h * (out_h - 1) + 1,
                           j + stride_w * (out_w - 1) + 1, x.shape[3]),
                          (1, stride_h, stride_w, 1))
      taps.append(jnp.einsum("bhwi,bhwo->io", shifted, output_grad,
                             out_sharding=out_sharding))
    rows.append(jnp.stack(taps))
  return jnp.stack(rows)


def _replicated(array):
  """The kernel gradient's sharding: replicated over the mesh the batch is split on (the
  contraction over the batch sums across devices); None outside a mesh."""
  mesh = jax.typeof(array).sharding.mesh
  if mesh.empty:
    return None
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _conv_bwd(strides, padding, residuals, output_grad):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x_: _lax_conv(strides, padding, x_, kernel), x)
  (input_grad,) = input_vjp(output_grad)
  kernel_grad = kernel_gradient(x, output_grad, kernel.shape, strides, padding)
  return input_grad, kernel_grad.astype(kernel.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)
