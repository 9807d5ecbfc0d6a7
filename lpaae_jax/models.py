"""The five networks of DESIGN §1, one definition each for every dataset, and `ModelSpec`,
the one place that builds them from a config.

Image size, channels, width multiplier and code/noise dims are module fields, so MNIST,
CIFAR-10 and SVHN build the same classes with different numbers. Parameters are float32;
`dtype` sets the activation (compute) dtype. Discriminators return logits.

The convolution is a field of each conv-holding module (`conv`, an nn.Conv-like class, and
`conv_transpose`, the 4x4 stride-2 transposed conv's function), as flax's
examples/imagenet passes `conv` to its ResNet: `ModelSpec` fills them from its
`backend.Backend` (the XLA:CPU formulations or plain Flax layers); parameter names and
functions are the same either way, so a checkpoint loads under both.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lpaae_jax import backend as backend_lib
from lpaae_jax import config_validation

Dtype = Any
ModuleDef = Any

# The decoder starts from, and the encoder ends at, a 4x4 feature map (DESIGN §1).
BASE_RESOLUTION = 4
# Channel multiplier of each resolution level below the input, capped as in the paper's 8w.
MAX_WIDTH_MULTIPLIER = 8
LEAKY_SLOPE = 0.2


def num_resolution_levels(image_size: int) -> int:
  """How many stride-2 blocks lie between `image_size` and the 4x4 base (3 for 32 px)."""
  return int(math.log2(image_size // BASE_RESOLUTION))


def level_width(width: int, level: int) -> int:
  """Channels at `level` halvings below full resolution: w, 2w, 4w, 8w, 8w, ..."""
  return width * min(2**level, MAX_WIDTH_MULTIPLIER)


def _batch_norm(train: bool, momentum: float, dtype: Dtype) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-5,
                      dtype=dtype, param_dtype=jnp.float32)


class TransposedConv(nn.Module):
  """`nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")`: the same
  parameters (`kernel` (4, 4, Cin, F), `bias` (F,)) and initialisers, computed by
  `conv_transpose` (`Backend.conv_transpose`: lax's, or the XLA:CPU sub-pixel convs).
  NHWC inputs."""
  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  conv_transpose: Callable = backend_lib.conv_transpose_4x4_stride2
  kernel_init: Any = nn.initializers.lecun_normal()  # nn.ConvTranspose's defaults
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return self.conv_transpose(x, kernel) + bias


def nearest_upsampling_kernel(kernel):
  """The (4, 4, C, F) kernel of the stride-2 transposed conv (nn.ConvTranspose's SAME,
  unflipped) that equals a 3x3 SAME conv with `kernel` (3, 3, C, F) applied after nearest
  2x upsampling. Along each axis output 2m takes w0 x[m-1] + (w1 + w2) x[m] and output
  2m+1 takes (w0 + w1) x[m] + w2 x[m+1], i.e. the transposed conv's taps
  [w0, w0 + w1, w1 + w2, w2]: the resize-conv at the
  transposed conv's cost, and both output phases sum the same taps, so no checkerboard."""
  def four_taps(k, axis):
    k0, k1, k2 = jnp.split(k, 3, axis=axis)
    return jnp.concatenate([k0, k0 + k1, k1 + k2, k2], axis=axis)
  return four_taps(four_taps(kernel, 0), 1)


class ResizeConv(nn.Module):
  """Nearest 2x upsampling then a 3x3 SAME conv (Odena et al. 2016's fix for the
  transposed conv's checkerboard), evaluated as the equivalent transposed conv
  (`nearest_upsampling_kernel`): parameters `kernel` (3, 3, C, F) and `bias` (F,), as an
  nn.Conv's; `conv_transpose` computes it (see `TransposedConv`). NHWC inputs."""
  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  conv_transpose: Callable = backend_lib.conv_transpose_4x4_stride2
  kernel_init: Any = nn.initializers.lecun_normal()  # nn.Conv's defaults
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return self.conv_transpose(x, nearest_upsampling_kernel(kernel)) + bias


UPSAMPLINGS = config_validation.UPSAMPLINGS


class ResBlock(nn.Module):
  """conv3x3 -> ReLU -> conv3x3, plus a skip, ReLU after the sum.

  `resample="down"` makes the first conv 3x3 stride 2 (encoder); `"up"` makes it a 2x
  upsampling conv (decoder): `upsampling="transposed"` the 4x4 stride-2 transposed conv of
  DESIGN §1's table (`TransposedConv`, parameters named `ConvTranspose_0` as
  nn.ConvTranspose's), `"resize_conv"` nearest upsampling then a 3x3 conv
  (`ResizeConv`, ours). `batch_norm` (ours) normalises each conv's output before its ReLU
  (the second conv's before the sum). When resolution or channels change, the skip is a
  learned 1x1 projection after average-pooling / before nearest upsampling (ours; the
  projection commutes with the upsampling).
  """
  features: int
  resample: str = "none"  # none | down | up
  dtype: Dtype = jnp.float32
  conv: ModuleDef = nn.Conv
  conv_transpose: Callable = backend_lib.conv_transpose_4x4_stride2
  upsampling: str = "transposed"
  batch_norm: bool = False
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = lambda f, k, s=1: self.conv(
        f, (k, k), strides=(s, s), padding="SAME", dtype=self.dtype, param_dtype=jnp.float32)
    norm = ((lambda h: _batch_norm(train, self.bn_momentum, self.dtype)(h))
            if self.batch_norm else (lambda h: h))
    if self.resample == "down":
      h = conv(self.features, 3, 2)(x)
    elif self.resample == "up" and self.upsampling == "resize_conv":
      h = ResizeConv(self.features, dtype=self.dtype, conv_transpose=self.conv_transpose,
                     name="ResizeConv_0")(x)
    elif self.resample == "up" and self.upsampling == "transposed":
      h = TransposedConv(self.features, dtype=self.dtype, conv_transpose=self.conv_transpose,
                         name="ConvTranspose_0")(x)
    elif self.resample == "none":
      h = conv(self.features, 3)(x)
    else:
      raise ValueError(f"ResBlock.resample={self.resample!r}, upsampling="
                       f"{self.upsampling!r}; use 'none', 'down' or 'up', and {UPSAMPLINGS}.")
    h = norm(conv(self.features, 3)(nn.relu(norm(h))))

    skip = x
    if self.resample == "down":
      skip = mean_pool_2x2(skip)
    if skip.shape[-1] != self.features or self.resample != "none":
      skip = conv(self.features, 1)(skip)
    if self.resample == "up":
      # After the 1x1 projection, which commutes with it: a quarter of the projection's work.
      skip = upsample_nearest_2x(skip)
    return nn.relu(h + skip)


def mean_pool_2x2(x):
  """NHWC 2x2 average pooling, stride 2 (`nn.avg_pool(x, (2, 2), strides=(2, 2))`), as a
  mean over a reshape: its gradient is a broadcast instead of a windowed reduction's."""
  batch, height, width, channels = x.shape
  blocks = jnp.reshape(x, (batch, height // 2, 2, width // 2, 2, channels),
                       out_sharding=jax.typeof(x).sharding)
  return jnp.mean(blocks, axis=(2, 4))


def upsample_nearest_2x(x):
  """NHWC nearest-neighbour 2x upsampling (`jax.image.resize(..., "nearest")` to twice the
  size), as a broadcast: its gradient sums 2x2 blocks instead of scattering."""
  batch, height, width, channels = x.shape
  y = jnp.broadcast_to(x[:, :, None, :, None, :], (batch, height, 2, width, 2, channels))
  # Only the batch axis is ever split, so the output keeps the input's sharding.
  return jnp.reshape(y, (batch, 2 * height, 2 * width, channels),
                     out_sharding=jax.typeof(x).sharding)


class Encoder(nn.Module):
  """x (B, S, S, C) in [-1, 1] -> code (B, code_dim), linear output."""
  width: int
  code_dim: int
  image_size: int = 32
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, train: bool):
    x = x.astype(self.dtype)
    x = nn.relu(self.conv(self.width, (3, 3), padding="SAME", dtype=self.dtype,
                          param_dtype=jnp.float32)(x))
    x = ResBlock(self.width, dtype=self.dtype, conv=self.conv)(x, train)
    for level in range(1, num_resolution_levels(self.image_size) + 1):
      x = ResBlock(level_width(self.width, level), "down", dtype=self.dtype,
                   conv=self.conv)(x, train)
    x = jnp.mean(x, axis=(1, 2))  # global average pool over the 4x4 map
    x = nn.Dense(2 * self.code_dim, dtype=self.dtype, param_dtype=jnp.float32)(x)
    x = nn.relu(_batch_norm(train, self.bn_momentum, self.dtype)(x))
    x = nn.Dense(self.code_dim, dtype=self.dtype, param_dtype=jnp.float32)(x)
    return x.astype(jnp.float32)


class Decoder(nn.Module):
  """code (B, code_dim) -> image (B, S, S, C) in [-1, 1] (tanh).

  `upsampling` and `block_norm` ("none" | "batch") choose its blocks' upsampling conv and
  normalisation (`ResBlock`; ours, SPEC §1)."""
  width: int
  channels: int
  image_size: int = 32
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  upsampling: str = "transposed"
  block_norm: str = "none"
  conv: ModuleDef = nn.Conv
  conv_transpose: Callable = backend_lib.conv_transpose_4x4_stride2

  @nn.compact
  def __call__(self, z, train: bool):
    levels = num_resolution_levels(self.image_size)
    base_width = level_width(self.width, levels)
    # A 4x4 transposed conv on a 1x1 input (DESIGN §1) is exactly a dense layer to 4*4*8w.
    x = nn.Dense(BASE_RESOLUTION * BASE_RESOLUTION * base_width, dtype=self.dtype,
                 param_dtype=jnp.float32)(z.astype(self.dtype))
    x = x.reshape(z.shape[0], BASE_RESOLUTION, BASE_RESOLUTION, base_width)
    x = nn.relu(_batch_norm(train, self.bn_momentum, self.dtype)(x))
    for level in reversed(range(levels)):
      x = ResBlock(level_width(self.width, level), "up", dtype=self.dtype, conv=self.conv,
                   conv_transpose=self.conv_transpose, upsampling=self.upsampling,
                   batch_norm=self.block_norm == "batch", bn_momentum=self.bn_momentum)(x, train)
    x = self.conv(self.channels, (3, 3), padding="SAME", dtype=self.dtype,
                  param_dtype=jnp.float32)(x)
    return jnp.tanh(x.astype(jnp.float32))


class CodeGenerator(nn.Module):
  """[z; s] -> z_c (B, code_dim): the learned prior (BatchNorm-ed linear output)."""
  noise_dim: int
  code_dim: int
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs, train: bool):
    x = nn.Dense(2 * self.noise_dim, dtype=self.dtype, param_dtype=jnp.float32)(
        inputs.astype(self.dtype))
    x = nn.relu(_batch_norm(train, self.bn_momentum, self.dtype)(x))
    x = nn.Dense(self.code_dim, dtype=self.dtype, param_dtype=jnp.float32)(x)
    x = _batch_norm(train, self.bn_momentum, self.dtype)(x)
    return x.astype(jnp.float32)


class ImageDiscriminator(nn.Module):
  """D_I with the InfoGAN Q head.

  Returns (real/fake logit (B,), Q's logits of s (B, num_classes), features): `features` holds
  the output of each of the three conv layers, (B, 16, 16, w), (B, 8, 8, 2w) and the
  feature layer F of DESIGN §1, (B, 4, 4, 4w), for the learned similarity metric
  (`loss.feature_layers` chooses which of them the reconstruction loss compares).
  """
  width: int
  num_classes: int
  hidden: int = 1000
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, train: bool):
    def conv_block(features, inputs, batch_norm: bool):
      h = self.conv(features, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype,
                    param_dtype=jnp.float32)(inputs)
      if batch_norm:  # the table's BatchNorm, each batch by its own statistics
        h = _batch_norm(train, self.bn_momentum, self.dtype)(h)
      return nn.leaky_relu(h, LEAKY_SLOPE)

    dense = lambda features, name=None: nn.Dense(features, dtype=self.dtype,
                                                 param_dtype=jnp.float32, name=name)
    x = x.astype(self.dtype)
    layer1 = conv_block(self.width, x, batch_norm=False)
    layer2 = conv_block(2 * self.width, layer1, batch_norm=True)
    layer3 = conv_block(4 * self.width, layer2, batch_norm=True)
    h = layer3.reshape(layer3.shape[0], -1)
    h = nn.leaky_relu(dense(self.hidden)(h), LEAKY_SLOPE)
    logit = dense(1, "D")(h)[:, 0]
    q_outputs = dense(self.num_classes, "Q")(h)
    features = tuple(f.astype(jnp.float32) for f in (layer1, layer2, layer3))
    return logit.astype(jnp.float32), q_outputs.astype(jnp.float32), features


class CodeDiscriminator(nn.Module):
  """D_C: code (B, code_dim) -> logit (B,). No BatchNorm, so it carries no batch_stats."""
  hidden: Sequence[int] = (1000, 500, 200)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    del train  # same function in both modes; the argument keeps every network's call uniform
    x = z.astype(self.dtype)
    for features in self.hidden:
      x = nn.leaky_relu(nn.Dense(features, dtype=self.dtype, param_dtype=jnp.float32)(x),
                        LEAKY_SLOPE)
    return nn.Dense(1, dtype=self.dtype, param_dtype=jnp.float32)(x)[:, 0].astype(jnp.float32)


# --------------------------------------------------------------- building them from a config


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Static description of the model: everything traced code needs from the config.

  Hashable, so it can live in the (static part of the) states pytree and be bound into
  jitted functions; built once from a ConfigDict by `ModelSpec.from_config`.
  """
  condition: str = "none"
  prior: str = "learned"
  image_size: int = 32
  channels: int = 3
  width: int = 64
  code_dim: int = 64
  noise_dim: int = 64
  num_classes: int = 10
  disc_hidden: int = 1000
  code_disc_hidden: tuple[int, ...] = (1000, 500, 200)
  bn_momentum: float = 0.9
  code_generator_s_scale: float = 1.0  # the one-hot s in the code generator's input
  compute_dtype: str = "float32"
  # How the same functions are computed (config.fast_paths; lpaae_jax/backend.py).
  backend: backend_lib.Backend = backend_lib.Backend()
  # ours (SPEC §1): the decoder's upsampling conv and block normalisation.
  upsampling: str = "transposed"
  decoder_norm: str = "none"

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "ModelSpec":
    config_validation.validate_model_config(config)
    model = config.model
    return cls(condition=model.condition, prior=model.prior, image_size=model.image_size,
               channels=model.channels, width=model.width, code_dim=model.code_dim,
               noise_dim=model.noise_dim, num_classes=model.num_classes,
               disc_hidden=model.disc_hidden,
               code_disc_hidden=tuple(model.code_disc_hidden),
               bn_momentum=model.bn_momentum,
               code_generator_s_scale=float(model.get("code_generator_s_scale", 1.0)),
               compute_dtype=config.compute_dtype,
               backend=backend_lib.from_config(config),
               # Configs from before the fields: the paper's table.
               upsampling=model.get("upsampling", "transposed"),
               decoder_norm=model.get("decoder_norm", "none"))

  @property
  def conditional(self) -> bool:
    return self.condition != "none"

  @property
  def learned_prior(self) -> bool:
    return self.prior == "learned"

  @property
  def label_conditioned_code_discriminator(self) -> bool:
    """Supervised label tie (a): D_C judges [code; one-hot label] (DESIGN §2)."""
    return self.condition == "supervised"

  @property
  def q_on_real_images(self) -> bool:
    """Supervised label tie (b): Q also learns the labels of real images (DESIGN §2)."""
    return self.condition == "supervised"

  @property
  def code_discriminator_input_size(self) -> int:
    return self.code_dim + (self.num_classes if self.label_conditioned_code_discriminator
                            else 0)

  @property
  def noise_size(self) -> int:
    """Dimension of the noise z of the prior (DESIGN §2)."""
    if self.learned_prior:
      return self.noise_dim
    return self.code_dim - self.num_classes if self.conditional else self.code_dim

  @property
  def dtype(self):
    return jnp.dtype(self.compute_dtype)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, self.channels)

  # One place builds each network, for every dataset. Cached: TrainState.apply_fn is a
  # static (compared) field and bound methods compare their module by identity, so equal
  # specs must hand out the same module object or every new States would recompile.
  @functools.cache
  def encoder(self) -> Encoder:
    return Encoder(self.width, self.code_dim, self.image_size, self.bn_momentum,
                   self.dtype, conv=self.backend.conv)

  @functools.cache
  def decoder(self) -> Decoder:
    return Decoder(self.width, self.channels, self.image_size, self.bn_momentum,
                   self.dtype, self.upsampling, self.decoder_norm, conv=self.backend.conv,
                   conv_transpose=self.backend.conv_transpose)

  @functools.cache
  def code_generator(self) -> CodeGenerator:
    return CodeGenerator(self.noise_dim, self.code_dim, self.bn_momentum, self.dtype)

  @functools.cache
  def image_discriminator(self) -> ImageDiscriminator:
    return ImageDiscriminator(self.width, self.num_classes, self.disc_hidden,
                              self.bn_momentum, self.dtype, conv=self.backend.conv)

  @functools.cache
  def code_discriminator(self) -> CodeDiscriminator:
    return CodeDiscriminator(self.code_disc_hidden, self.dtype)
