"""2-D convolutions with CPU formulations: matmul kernel gradients, Winograd F(4x4, 3x3),
thin convolutions, the sub-pixel transposed convolution.

XLA:CPU computes a convolution's kernel gradient as a convolution whose window is the whole
feature map. For the 1x1 skip projections that is slower than the same gradient as one
matmul with the batch and spatial positions as contraction (for a k x k kernel: a sum over
the taps of (input shifted by the tap)^T @ (output gradient)). For 3x3 and larger kernels
the tap-by-tap matmuls measured slower than XLA's own gradient with the jax of
requirements.txt (`python -m experiments.benchmark.kernel_gradients`; whole iterations in
experiments/benchmark/NOTEBOOK.md), so only 1x1 kernels take them.

The 3x3 stride-1 convolutions with 128 or more channels on maps of 16x16 or smaller (width
64's three inner levels, fewer at smaller widths) are computed, forward and both
gradients, with Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms
for Convolutional Neural Networks", 2016): per 4x4 output tile 36 multiplies (batched
matmuls over the channels) instead of 144, traded for transforms that move memory; that
trade paid only there on this CPU (`winograd_is_faster`).

The 3x3 convolutions with the image's 1 or 3 channels on one side (the encoder's first, the
decoder's last layer), which XLA:CPU runs far below its matmul rate, are one matmul each way whose
contraction runs over the wide side: the thin input's 3x3 neighbourhoods times the kernel,
or the wide input times the kernel to all nine taps' outputs, then their shifted sum
(`thin_conv`).

The decoder's sub-pixel transposed convolution (`sub_pixel_conv_transpose`, four 2x2 convs,
see `_sub_pixel_forward`) takes its input gradient from the transposed conv
itself: one stride-2 conv instead of the four 2x2 convs' gradients.

`conv_general_dilated` below is a drop-in for `jax.lax.conv_general_dilated` (and
`nn.Conv(conv_general_dilated=...)`): the same function, formulated differently only where
that measured faster (each rule's table: experiments/benchmark/README.md; sums reassociated; Winograd's exact algebra, whose float32 rounding
is ~1e-5 of the output's scale). Configurations it does not cover
(dilation, feature groups, layouts other than NHWC/HWIO) use lax's. The networks use it
only with `config.fast_paths` on (`auto` on the CPU backend; see `lpaae_jax.backend`).
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
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
  # Both below were measured (and Winograd's rounding bounded) in float32.
  float32 = lhs.dtype == rhs.dtype == jnp.float32
  if float32 and thin_conv_is_faster(lhs.shape, rhs.shape, strides, padding):
    return thin_conv(lhs, rhs)
  if float32 and winograd_is_faster(lhs.shape, rhs.shape, strides, padding):
    return winograd_conv(lhs, rhs)
  if not matmul_kernel_gradient_is_faster(lhs.shape, rhs.shape, strides, padding):
    return lax_conv()
  return _conv(strides, padding, lhs, rhs)


def matmul_kernel_gradient_is_faster(input_shape, kernel_shape, strides, padding) -> bool:
  """Where the tap-by-tap matmuls beat XLA:CPU's kernel gradient (batch 64, this project's
  CPU; `python -m experiments.benchmark.kernel_gradients`, the per-layer timings in
  experiments/benchmark/kernel_gradients_cpu_2026-12-04.txt, whole iterations in
  experiments/benchmark/NOTEBOOK.md): the 1x1 skip projections, at every width. For 3x3 and larger kernels XLA's own kernel gradient measured as fast or faster,
  layer by layer and in whole iterations at width 64, so those keep it."""
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


# ------------------------------------------------ Winograd F(4x4, 3x3) for 3x3 SAME convs

# Lavin & Gray's F(4, 3) matrices (interpolation points 0, +-1, +-2, infinity): along one axis
# a 6-wide input tile d and 3-tap kernel g give 4 outputs A^T [(G g) * (B^T d)].
_B_T = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_A_T = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], np.float64)
_TILE, _OUT = 6, 4  # input tile and output tile sizes
# The 2-D transforms on row-major flattened tiles (Kronecker products of the 1-D ones), as
# the left operands of matmuls over the 36 tile positions: a dense (36, 36) matmul beat
# separable elementwise sums on this CPU. Transposes precomputed for the backward pass.
_INPUT_TRANSFORM = np.kron(_B_T, _B_T).astype(np.float32)         # (36, 36)
_KERNEL_TRANSFORM = np.kron(_G, _G).astype(np.float32)            # (36, 9)
_OUTPUT_TRANSFORM = np.kron(_A_T, _A_T).astype(np.float32)        # (16, 36)
_KERNEL_TRANSFORM_T = np.ascontiguousarray(_KERNEL_TRANSFORM.T)   # (9, 36)
_OUTPUT_TRANSFORM_T = np.ascontiguousarray(_OUTPUT_TRANSFORM.T)   # (36, 16)


def winograd_is_faster(input_shape, kernel_shape, strides, padding) -> bool:
  """Where Winograd F(4x4, 3x3) beat XLA:CPU's convolutions, forward and both gradients
  together (batch 64, float32, this project's CPU, with the train steps' compiler options;
  `python -m experiments.benchmark.winograd_layers`, winograd_layers_cpu.txt): 3x3 stride-1
  SAME convs with 128 or more channels in and out on maps of 16x16 or smaller (sides
  multiples of 4): 1.5-1.9x at width 64's 16x16x128, 8x8x256 and 4x4x512, level within the
  noise (0.94-1.23x over two runs) with 128-256 channels on 8x8 and 4x4 maps. On 32x32 maps,
  and below 128 channels, the transforms' memory traffic cost more than the multiplies
  saved."""
  _, height, width, in_features = input_shape
  return (tuple(kernel_shape[:2]) == (3, 3) and tuple(strides) == (1, 1)
          and tuple(map(tuple, padding)) == ((1, 1), (1, 1))
          and height % _OUT == 0 and width % _OUT == 0 and max(height, width) <= 16
          and min(in_features, kernel_shape[3]) >= 128)


def _tile_positions(x, tile: int):
  """(B, H', W', C) -> (tile**2, B, th * tw, C): for each position (i, j) of the tile x tile
  tiles at stride 4, x at that position of every tile (a stride-4 slice), the tiles' rows
  and columns flattened (stride-4 slices, stacked)."""
  batch, _, _, features = x.shape
  tiles_h, tiles_w = (x.shape[1] - tile) // _OUT + 1, (x.shape[2] - tile) // _OUT + 1
  positions = jnp.stack([
      lax.slice(x, (0, i, j, 0), (batch, i + _OUT * (tiles_h - 1) + 1,
                                  j + _OUT * (tiles_w - 1) + 1, features), (1, _OUT, _OUT, 1))
      for i in range(tile) for j in range(tile)])
  return _reshape(positions, (tile**2, batch, tiles_h * tiles_w, features), 1, 1)


def _input_tiles(x):
  """(B, H, W, C) -> the Winograd-domain input, (36, B, H/4 * W/4, C): the 6x6 tiles at
  stride 4 of x zero-padded by 1 (overlapping by 2), each transformed by B^T d B."""
  tiles = _tile_positions(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), _TILE)
  return jnp.einsum("st,tbnc->sbnc", _INPUT_TRANSFORM, tiles)


def _output_image(winograd_output, image_shape):
  """(36, B, n, F) Winograd-domain products -> the (B, H, W, F) output: A^T M A per tile."""
  batch, height, width, features = image_shape
  tiles = jnp.einsum("os,sbnf->obnf", _OUTPUT_TRANSFORM, winograd_output)
  tiles = _reshape(tiles, (_OUT, _OUT, batch, height // _OUT, width // _OUT, features), 1, 2)
  return _reshape(tiles.transpose(2, 3, 0, 4, 1, 5), image_shape, 0, 0)


def _output_tiles(image):
  """The adjoint of `_output_image`: (B, H, W, F) -> (36, B, n, F)."""
  return jnp.einsum("so,obnf->sbnf", _OUTPUT_TRANSFORM_T, _tile_positions(image, _OUT))


def _reshape(array, shape, batch_axis, new_batch_axis):
  """`jnp.reshape` that keeps the batch axis's sharding (the one axis a mesh splits) at its
  new position: JAX does not infer the output sharding of most reshapes of a sharded array."""
  sharding = jax.typeof(array).sharding
  if sharding.mesh.empty:
    return jnp.reshape(array, shape)
  spec = [None] * len(shape)
  spec[new_batch_axis] = (tuple(sharding.spec) + (None,) * array.ndim)[batch_axis]
  return jnp.reshape(array, shape, out_sharding=jax.sharding.NamedSharding(
      sharding.mesh, jax.sharding.PartitionSpec(*spec)))


def _kernel_transform(kernel):
  """(3, 3, C, F) -> (36, C, F): G g G^T per input/output channel pair."""
  return jnp.einsum("st,tcf->scf", _KERNEL_TRANSFORM, kernel.reshape(9, *kernel.shape[2:]))


def _winograd_forward(x, kernel):
  transformed_input = _input_tiles(x)
  products = jnp.einsum("sbnc,scf->sbnf", transformed_input, _kernel_transform(kernel))
  return _output_image(products, x.shape[:3] + kernel.shape[3:]), transformed_input


@jax.custom_vjp
def winograd_conv(x, kernel):
  """`lax.conv_general_dilated(x, kernel, (1, 1), "SAME")` for a (3, 3, C, F) kernel and NHWC
  x with H and W multiples of 4, by Winograd F(4x4, 3x3); both gradients too."""
  return _winograd_forward(x, kernel)[0]


def _winograd_fwd(x, kernel):
  output, transformed_input = _winograd_forward(x, kernel)
  return output, (transformed_input, kernel)


def _winograd_bwd(residuals, output_grad):
  transformed_input, kernel = residuals
  # Kernel gradient in the Winograd domain, reusing the forward's transformed input:
  # dU_s = V_s^T dM_s per tile position s, then back through G.
  products_grad = _output_tiles(output_grad)
  transformed_kernel_grad = jnp.einsum("sbnc,sbnf->scf", transformed_input, products_grad,
                                       out_sharding=_replicated(output_grad))
  kernel_grad = jnp.einsum("ts,scf->tcf", _KERNEL_TRANSFORM_T,
                           transformed_kernel_grad).reshape(kernel.shape)
  # Input gradient: the SAME 3x3 convolution of the output gradient with the kernel flipped
  # and its channels swapped, itself by Winograd (no scatter of overlapping tiles).
  input_grad = _winograd_forward(output_grad, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))[0]
  return input_grad, kernel_grad.astype(kernel.dtype)


winograd_conv.defvjp(_winograd_fwd, _winograd_bwd)


# ------------------------------------ 3x3 SAME convs with image channels (1 or 3) in or out

# The thin side's channels at most this (the image's: 1 for MNIST, 3 for CIFAR-10/SVHN).
_THIN_CHANNELS = 4


def thin_conv_is_faster(input_shape, kernel_shape, strides, padding) -> bool:
  """Where `thin_conv` beat XLA:CPU's convolution, forward and both gradients together
  (batch 64, float32, 32x32 maps, this project's CPU, the train steps' compiler options;
  `python -m experiments.benchmark.thin_layers`, thin_layers_cpu.txt): 3x3 stride-1 SAME
  convs with at most 4 channels in or out - the encoder's first and the decoder's last
  layer. Wider ones keep XLA's."""
  del input_shape  # measured on 32x32 maps; the formulation does not depend on the size
  return (tuple(kernel_shape[:2]) == (3, 3) and tuple(strides) == (1, 1)
          and tuple(map(tuple, padding)) == ((1, 1), (1, 1))
          and min(kernel_shape[2:]) <= _THIN_CHANNELS)


def _patches(x, flipped: bool = False):
  """(B, H, W, C) -> (B, H, W, 9C): each position's 3x3 neighbourhood in x zero-padded by 1,
  taps in HWIO order (row, column, channel). `flipped` takes tap (i, j) from (2 - i, 2 - j)
  of the neighbourhood, as the kernel gradient of a conv with these inputs needs."""
  batch, height, width, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  offsets = [(2 - i, 2 - j) if flipped else (i, j) for i in range(3) for j in range(3)]
  return jnp.concatenate([padded[:, i:i + height, j:j + width, :] for i, j in offsets],
                         axis=-1)


def _im2col_conv(x, kernel):
  """The SAME 3x3 conv as one matmul, (B*H*W, 9C) @ (9C, F): for few input channels."""
  return jnp.einsum("bhwt,tf->bhwf", _patches(x), kernel.reshape(-1, kernel.shape[3]))


def _shifted_sum_conv(x, kernel):
  """The SAME 3x3 conv as one matmul to the 9F tap outputs of every position (tap-major,
  (9F, B, H, W)), then the sum of their nine shifted slices: for few output channels."""
  batch, height, width, _ = x.shape
  features = kernel.shape[3]
  taps = jnp.einsum("bhwc,tc->tbhw", x, kernel.swapaxes(2, 3).reshape(9 * features, -1))
  taps = jnp.pad(taps, ((0, 0), (0, 0), (1, 1), (1, 1)))
  taps = _reshape(taps, (3, 3, features, batch, height + 2, width + 2), 1, 3)
  output = sum(taps[i, j, :, :, i:i + height, j:j + width] for i in range(3) for j in range(3))
  return output.transpose(1, 2, 3, 0)


def _thin_forward(x, kernel):
  if kernel.shape[3] <= _THIN_CHANNELS:
    return _shifted_sum_conv(x, kernel)
  return _im2col_conv(x, kernel)


@jax.custom_vjp
def thin_conv(x, kernel):
  """`lax.conv_general_dilated(x, kernel, (1, 1), "SAME")` for a (3, 3, C, F) kernel with C
  or F <= 4, NHWC x: every product as a matmul whose contraction runs over the wide side
  (or over the batch and positions, for the kernel gradient); both gradients too."""
  return _thin_forward(x, kernel)


def _thin_fwd(x, kernel):
  return _thin_forward(x, kernel), (x, kernel)


def _thin_bwd(residuals, output_grad):
  x, kernel = residuals
  in_features, features = kernel.shape[2:]
  out_sharding = _replicated(output_grad)
  # Kernel gradient: one matmul over (B, H, W), with the neighbourhoods of the thin side.
  # Input gradient: the SAME conv of the output gradient with the kernel flipped and its
  # channels swapped, which is thin the other way round.
  if features <= in_features:
    # Both from the output gradient's flipped neighbourhoods (one copy of them).
    neighbourhoods = _patches(output_grad, flipped=True)
    kernel_grad = jnp.einsum("bhwc,bhwt->tc", x, neighbourhoods, out_sharding=out_sharding)
    kernel_grad = kernel_grad.reshape(3, 3, features, in_features).swapaxes(2, 3)
    input_grad = jnp.einsum("bhwt,tc->bhwc", neighbourhoods,
                            kernel.swapaxes(2, 3).reshape(9 * features, in_features))
  else:
    kernel_grad = jnp.einsum("bhwt,bhwf->tf", _patches(x), output_grad,
                             out_sharding=out_sharding).reshape(kernel.shape)
    input_grad = _shifted_sum_conv(output_grad, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  return input_grad, kernel_grad.astype(kernel.dtype)


thin_conv.defvjp(_thin_fwd, _thin_bwd)


# ------------------------------------------- the decoder's 4x4 stride-2 transposed conv

def _sub_pixel_forward(x, kernel):
  """`lax.conv_transpose(x, kernel, (2, 2), "SAME")` (NHWC, a (4, 4, C, F) kernel, not
  flipped: nn.ConvTranspose's) as four 2x2 convs, one per output phase, interleaved:
  along each axis output 2m+p (p = 0, 1) is x[m-1+p] w[p] + x[m+p] w[p+2], a 2x2 conv with
  taps w[p::2], padded (1-p, p) (lax pads the 2x-dilated input by 2 a side, unflipped)."""
  batch, height, width, in_features = x.shape
  features = kernel.shape[3]
  # kernel[2a + p, 2b + q] is tap (a, b) of phase (p, q).
  taps = kernel.reshape(2, 2, 2, 2, in_features, features)
  rows = []
  for p in range(2):
    phases = [conv_general_dilated(x, taps[:, p, :, q], (1, 1), ((1 - p, p), (1 - q, q)),
                                   dimension_numbers=_NHWC_HWIO)
              for q in range(2)]
    rows.append(jnp.stack(phases, axis=3))  # (B, H, W, 2q, F)
  y = jnp.stack(rows, axis=2)  # (B, H, 2p, W, 2q, F)
  # Under an explicit-sharding mesh JAX cannot infer this merge's output sharding; only
  # the batch axis is ever split, so the output keeps the input's (NHWC, same rank).
  return jnp.reshape(y, (batch, 2 * height, 2 * width, features),
                     out_sharding=jax.typeof(x).sharding)


def _transposed_conv(x, kernel):
  return lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=_NHWC_HWIO)


@jax.custom_vjp
def sub_pixel_conv_transpose(x, kernel):
  """`lax.conv_transpose(x, kernel, (2, 2), "SAME")` with nn.ConvTranspose's (unflipped)
  (4, 4, C, F) kernel: forward and kernel gradient by the four sub-pixel 2x2 convs (XLA:CPU
  runs transposed convs an order of magnitude slower per FLOP), the input gradient as the
  transposed conv's own, one 4x4 stride-2 conv of the output gradient, faster than the four
  2x2 convs' input gradients (experiments/benchmark/sub_pixel_layers_cpu.txt)."""
  return _sub_pixel_forward(x, kernel)


def _sub_pixel_fwd(x, kernel):
  return _sub_pixel_forward(x, kernel), (x, kernel)


def _sub_pixel_bwd(residuals, output_grad):
  x, kernel = residuals
  (input_grad,) = jax.vjp(lambda x_: _transposed_conv(x_, kernel), x)[1](output_grad)
  (kernel_grad,) = jax.vjp(lambda k: _sub_pixel_forward(x, k), kernel)[1](output_grad)
  return input_grad, kernel_grad


sub_pixel_conv_transpose.defvjp(_sub_pixel_fwd, _sub_pixel_bwd)
