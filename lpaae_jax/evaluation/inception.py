"""The FID InceptionV3 of pytorch-fid (TF graph inception-2015-12-05) in Flax, NHWC.

Mirrors pytorch-fid's `fid_inception_v3()`: torchvision's Inception3 with the
FIDInceptionA/C/E_1/E_2 patches (average pools ignore the zero padding, the
last block max-pools), BatchNorm eps 1e-3, and the 1008-way `fc` of the TF
graph. Weights come from an .npz keyed by pytorch-fid state-dict names; make
one from the pytorch-fid release with `python -m lpaae_jax.evaluation.convert_inception`.

Public API:
  resolve_inception_weights(path=None)  -> str (explicit path, $LPAAE_INCEPTION_WEIGHTS, cache)
  load_inception_variables(path=None)   -> {"params", "batch_stats"} (numpy, flax layout)
  variables_from_state_dict(state_dict, source)
  preprocess_images(images)             -> (N, 299, 299, 3) float32 in [-1, 1]
  make_inception_fn(variables, batch_size) -> fn(images) -> {"pool3", "logits" or None}
"""

import functools
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from lpaae_jax import errors

INPUT_SIZE = 299
POOL3_DIM = 2048
NUM_LOGITS = 1008  # The TF graph's classifier: 1000 ImageNet classes + 8 unused.

WEIGHTS_ENV_VAR = "LPAAE_INCEPTION_WEIGHTS"
DEFAULT_WEIGHTS_PATH = "~/.cache/lpaae_jax/pt_inception-2015-12-05.npz"
RELEASE_PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
RELEASE_PTH_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   + RELEASE_PTH_NAME)
# Only the name's suffix is known for certain: the first 8 hex digits of the file's SHA-256.
RELEASE_PTH_SHA256_PREFIX = "6726825d"

# Full float32 convs: TPU/GPU default precisions (bf16 passes, TF32) shift FID noticeably.
_PRECISION = jax.lax.Precision.HIGHEST


def _pair(value) -> tuple[int, int]:
  return (value, value) if isinstance(value, int) else tuple(value)


class BasicConv2d(nn.Module):
  """Conv (no bias) -> BatchNorm (running stats, eps 1e-3) -> ReLU, as torchvision's."""
  features: int
  kernel_size: Any
  strides: Any = 1
  padding: Any = 0

  @nn.compact
  def __call__(self, x):
    pad_h, pad_w = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel_size), strides=_pair(self.strides),
                padding=((pad_h, pad_h), (pad_w, pad_w)), use_bias=False,
                precision=_PRECISION, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  # TF's average pool ignores the zero padding (pytorch-fid: count_include_pad=False).
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3(x, stride: int, padding: int = 0):
  return nn.max_pool(x, (3, 3), strides=(stride, stride),
                     padding=((padding, padding), (padding, padding)))


class InceptionA(nn.Module):
  """FIDInceptionA (Mixed_5b/c/d)."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv2d(64, 1, name="branch1x1")(x)
    branch5x5 = BasicConv2d(48, 1, name="branch5x5_1")(x)
    branch5x5 = BasicConv2d(64, 5, padding=2, name="branch5x5_2")(branch5x5)
    branch3x3dbl = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = BasicConv2d(self.pool_features, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """torchvision's InceptionB (Mixed_6a), a stride-2 reduction."""

  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv2d(384, 3, strides=2, name="branch3x3")(x)
    branch3x3dbl = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv2d(96, 3, strides=2, name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = _max_pool_3x3(x, stride=2)
    return jnp.concatenate([branch3x3, branch3x3dbl, branch_pool], axis=-1)


class InceptionC(nn.Module):
  """FIDInceptionC (Mixed_6b/c/d/e), factorised 7x7 convolutions."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    branch1x1 = BasicConv2d(192, 1, name="branch1x1")(x)
    branch7x7 = BasicConv2d(c7, 1, name="branch7x7_1")(x)
    branch7x7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
    branch7x7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
    branch7x7dbl = BasicConv2d(c7, 1, name="branch7x7dbl_1")(x)
    branch7x7dbl = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(branch7x7dbl)
    branch_pool = BasicConv2d(192, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """torchvision's InceptionD (Mixed_7a), a stride-2 reduction."""

  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv2d(192, 1, name="branch3x3_1")(x)
    branch3x3 = BasicConv2d(320, 3, strides=2, name="branch3x3_2")(branch3x3)
    branch7x7x3 = BasicConv2d(192, 1, name="branch7x7x3_1")(x)
    branch7x7x3 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, 3, strides=2, name="branch7x7x3_4")(branch7x7x3)
    branch_pool = _max_pool_3x3(x, stride=2)
    return jnp.concatenate([branch3x3, branch7x7x3, branch_pool], axis=-1)


class InceptionE(nn.Module):
  """FIDInceptionE_1 (Mixed_7b, pool="avg") and FIDInceptionE_2 (Mixed_7c, pool="max")."""
  pool: str

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv2d(320, 1, name="branch1x1")(x)
    branch3x3 = BasicConv2d(384, 1, name="branch3x3_1")(x)
    branch3x3 = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3),
    ], axis=-1)
    branch3x3dbl = BasicConv2d(448, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl),
    ], axis=-1)
    # The TF graph's last block max-pools here (pytorch-fid's FIDInceptionE_2).
    pooled = _max_pool_3x3(x, stride=1, padding=1) if self.pool == "max" else _avg_pool_3x3(x)
    branch_pool = BasicConv2d(192, 1, name="branch_pool")(pooled)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class InceptionV3(nn.Module):
  """(N, 299, 299, 3) in [-1, 1] -> (pool3 (N, 2048), logits (N, 1008) or None)."""
  with_fc: bool = False

  @nn.compact
  def __call__(self, x):
    x = BasicConv2d(32, 3, strides=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3(x, stride=2)
    x = BasicConv2d(80, 1, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, 3, name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3(x, stride=2)
    x = InceptionA(pool_features=32, name="Mixed_5b")(x)
    x = InceptionA(pool_features=64, name="Mixed_5c")(x)
    x = InceptionA(pool_features=64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(channels_7x7=128, name="Mixed_6b")(x)
    x = InceptionC(channels_7x7=160, name="Mixed_6c")(x)
    x = InceptionC(channels_7x7=160, name="Mixed_6d")(x)
    x = InceptionC(channels_7x7=192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(pool="avg", name="Mixed_7b")(x)
    x = InceptionE(pool="max", name="Mixed_7c")(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    if not self.with_fc:
      return pool3, None
    logits = nn.Dense(NUM_LOGITS, precision=_PRECISION, name="fc")(pool3)
    return pool3, logits


# --- Weights -------------------------------------------------------------------------------

# (flax collection, flax leaf name) -> torch state-dict leaf name.
_TORCH_LEAF_NAMES = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
  if len(flax_shape) == 4:  # Conv kernel (H, W, I, O) <- torch (O, I, H, W).
    height, width, fan_in, fan_out = flax_shape
    return (fan_out, fan_in, height, width)
  if len(flax_shape) == 2:  # Dense kernel (I, O) <- torch Linear (O, I).
    return flax_shape[::-1]
  return flax_shape


def _to_flax_layout(torch_array: np.ndarray) -> np.ndarray:
  if torch_array.ndim == 4:
    return np.transpose(torch_array, (2, 3, 1, 0))
  if torch_array.ndim == 2:
    return torch_array.T
  return torch_array


@functools.lru_cache(maxsize=2)
def expected_state_dict_shapes(with_fc: bool) -> dict[tuple[str, ...], tuple[str, tuple]]:
  """{flax variable path: (pytorch-fid state-dict key, torch-layout shape)} of the network."""
  abstract = jax.eval_shape(InceptionV3(with_fc=with_fc).init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  spec = {}
  for path, leaf in traverse_util.flatten_dict(abstract).items():
    collection, *modules, leaf_name = path
    torch_key = ".".join([*modules, _TORCH_LEAF_NAMES[(collection, leaf_name)]])
    spec[path] = (torch_key, _torch_shape(tuple(leaf.shape)))
  return spec


def variables_from_state_dict(state_dict: Mapping[str, Any], source: str = "state dict") -> dict:
  """pytorch-fid state dict (torch layout) -> flax {"params", "batch_stats"} (float32 numpy).

  Holds `fc` iff the state dict has `fc.*` keys. Keys the network does not use
  (e.g. num_batches_tracked) are ignored. A missing key or a wrong shape raises
  a one-line ValueError naming `source`, the key and what was expected.
  """
  with_fc = "fc.weight" in state_dict or "fc.bias" in state_dict
  flat_variables = {}
  for path, (torch_key, torch_shape) in expected_state_dict_shapes(with_fc).items():
    if torch_key not in state_dict:
      raise ValueError(f"{source}: bad InceptionV3 weights: key {torch_key!r} is missing "
                       f"(expected an array of shape {torch_shape}).")
    array = np.asarray(state_dict[torch_key])
    if array.shape != torch_shape:
      raise ValueError(f"{source}: bad InceptionV3 weights: key {torch_key!r} has shape "
                       f"{array.shape}, expected {torch_shape} (pytorch-fid, torch layout).")
    if not np.issubdtype(array.dtype, np.floating):
      raise ValueError(f"{source}: bad InceptionV3 weights: key {torch_key!r} has dtype "
                       f"{array.dtype}, expected a float array of shape {torch_shape}.")
    flat_variables[path] = np.ascontiguousarray(_to_flax_layout(array), dtype=np.float32)
  return traverse_util.unflatten_dict(flat_variables)


def resolve_inception_weights(path: str | None = None) -> str:
  """Weights .npz: `path`, else $LPAAE_INCEPTION_WEIGHTS, else ~/.cache/lpaae_jax/.

  Never falls back to random weights: a missing file raises FileNotFoundError.
  """
  if path:
    origin = "given path"
  elif os.environ.get(WEIGHTS_ENV_VAR):
    path, origin = os.environ[WEIGHTS_ENV_VAR], f"${WEIGHTS_ENV_VAR}"
  else:
    path, origin = DEFAULT_WEIGHTS_PATH, f"default; set ${WEIGHTS_ENV_VAR} to override"
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"InceptionV3 FID weights not found: {path} ({origin}). Download the pytorch-fid "
        f"release {RELEASE_PTH_NAME} (SHA-256 starts with {RELEASE_PTH_SHA256_PREFIX}) from "
        f"{RELEASE_PTH_URL} and convert it: python -m lpaae_jax.evaluation.convert_inception "
        f"--pth={RELEASE_PTH_NAME} --out={path}")
  return path


def load_inception_variables(path: str | None = None) -> dict:
  """Resolves (see `resolve_inception_weights`), reads and validates the weights .npz."""
  path = resolve_inception_weights(path)
  try:
    npz = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as error:  # Not an npz, truncated, pickled, ...
    raise ValueError(f"{path}: unreadable InceptionV3 weights .npz: "
                     f"{errors.first_line(error)}") from error
  if not isinstance(npz, Mapping):  # A single .npy array.
    raise ValueError(f"{path}: InceptionV3 weights must be an .npz of named arrays, not .npy.")
  with npz:
    return variables_from_state_dict(npz, source=path)


# --- Inference -----------------------------------------------------------------------------


@jax.jit
def _preprocess(images):
  x = images.astype(jnp.float32)
  if images.dtype == jnp.uint8:
    x = x / 255.0
  # F.interpolate(bilinear, align_corners=False): half-pixel centres, no antialiasing.
  x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, x.shape[-1]), "bilinear",
                       antialias=False)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return 2.0 * x - 1.0


def _check_images(images, preprocess: bool) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim == 3 and preprocess:  # (N, H, W) grayscale.
    images = images[..., None]
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}.")
  if not preprocess:
    if images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
      raise ValueError(f"with preprocess=False, images must be (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) "
                       f"network inputs in [-1, 1]; got shape {images.shape}.")
    return images.astype(np.float32, copy=False)
  if images.shape[-1] not in (1, 3):
    raise ValueError(f"images must have 1 or 3 channels (NHWC); got shape {images.shape}.")
  if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"images must be uint8 or float in [0, 1]; got dtype {images.dtype}.")
  if np.issubdtype(images.dtype, np.floating):
    images = images.astype(np.float32, copy=False)
  return images


def preprocess_images(images) -> jax.Array:
  """uint8 or [0, 1] float (N, H, W, 1 or 3) -> (N, 299, 299, 3) float32 in [-1, 1].

  As pytorch-fid: /255 for uint8, bilinear resize (half-pixel centres, no
  antialiasing), gray repeated to RGB, then x * 2 - 1.
  """
  return _preprocess(jnp.asarray(_check_images(images, preprocess=True)))


def _apply(variables, inputs, with_fc: bool):
  return InceptionV3(with_fc=with_fc).apply(variables, inputs)


@functools.lru_cache(maxsize=None)
def _forward(compiler_options: tuple[tuple[str, str], ...] = ()):
  # One jit per set of compiler options, with the weights as arguments: one compile per
  # input shape, shared by every make_inception_fn, and no 90 MB of constants in the program.
  return jax.jit(_apply, static_argnames=("with_fc",),
                 compiler_options=dict(compiler_options) or None)


def _pad_batch(batch: np.ndarray, batch_size: int) -> np.ndarray:
  # A fixed batch shape keeps the last, short batch from compiling a second program.
  missing = batch_size - len(batch)
  if missing == 0:
    return batch
  return np.concatenate([batch, np.zeros((missing, *batch.shape[1:]), batch.dtype)])


def make_inception_fn(variables: Mapping[str, Any], batch_size: int = 50, *,
                      with_logits: bool | None = None, preprocess: bool = True,
                      compiler_options: tuple[tuple[str, str], ...] = ()):
  """-> fn(images) -> {"pool3": (N, 2048) float32, "logits": (N, 1008) float32 or None}.

  images: uint8 or [0, 1] float (N, H, W, 1 or 3) numpy; with preprocess=False,
  already (N, 299, 299, 3) network inputs in [-1, 1]. Runs jitted in batches of
  `batch_size` (the last one zero-padded). with_logits: None = iff the weights
  hold `fc`; True requires `fc` (the Inception Score needs it). compiler_options: XLA
  options of the network's compilation, as (name, value) pairs (`backend.Backend.compiler_options`).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
  has_fc = "fc" in variables["params"]
  if with_logits and not has_fc:
    raise ValueError("Inception Score logits requested, but these InceptionV3 weights have no "
                     "'fc' layer (e.g. the *_nofc file); convert the full pytorch-fid .pth "
                     "with python -m lpaae_jax.evaluation.convert_inception.")
  with_logits = has_fc if with_logits is None else with_logits
  params = {name: value for name, value in variables["params"].items()
            if with_logits or name != "fc"}
  device_variables = jax.device_put({"params": params, "batch_stats": variables["batch_stats"]})
  forward = _forward(tuple(compiler_options))

  def inception_fn(images) -> dict:
    images = _check_images(images, preprocess)
    pool3_parts, logits_parts = [], []
    pending = None  # Fetch batch i-1 only after dispatching batch i, to overlap host and device.

    def fetch(outputs, num_real):
      pool3, logits = outputs
      pool3_parts.append(np.asarray(pool3)[:num_real])
      if with_logits:
        logits_parts.append(np.asarray(logits)[:num_real])

    for start in range(0, len(images), batch_size):
      batch = images[start:start + batch_size]
      padded = _pad_batch(batch, batch_size)
      inputs = _preprocess(padded) if preprocess else jnp.asarray(padded)
      outputs = forward(device_variables, inputs, with_fc=with_logits)
      if pending is not None:
        fetch(*pending)
      pending = (outputs, len(batch))
    if pending is not None:
      fetch(*pending)
    if not pool3_parts:
      pool3_parts.append(np.zeros((0, POOL3_DIM), np.float32))
      logits_parts.append(np.zeros((0, NUM_LOGITS), np.float32))
    return {"pool3": np.concatenate(pool3_parts),
            "logits": np.concatenate(logits_parts) if with_logits else None}

  return inception_fn
