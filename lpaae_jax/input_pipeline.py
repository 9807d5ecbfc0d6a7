"""Input pipeline: tfds datasets (mnist, cifar10, svhn_cropped) as 32x32 images in [-1, 1].

Preprocessing: uint8 -> float32 in [-1, 1] (x / 127.5 - 1); MNIST (28x28x1) is then
padded to 32x32 with its black background, -1 in [-1, 1] (DESIGN §1), so the frame looks
like the rest of the background. Labels are int32.

Training batches are a pure function of (seed, step), which makes the iterator
deterministic and resumable in O(1) from any step:

  * The train split is decoded once into memory as uint8 (these datasets are small:
    MNIST 47 MB, CIFAR-10 150 MB, SVHN 225 MB) and preprocessed per batch.
  * A tf.data pipeline runs over the step numbers `range(start_step, ...)` and maps step
    t to the example indices of its global batch: epoch e = t // steps_per_epoch, with
    steps_per_epoch = N // B (the last N mod B examples of each epoch's order are
    dropped), and positions [(t mod steps_per_epoch) * B, ... + B) of a per-epoch
    permutation of [0, N) seeded by (seed, e). The permutation is never materialised:
    `tf.random.experimental.index_shuffle` maps each position to its example in O(1).
  * Each epoch is therefore a full, fresh shuffle (a perfect shuffle, unlike a shuffle
    buffer; hence no buffer size to configure).
  * The global batch does not depend on the process count: process p of P takes rows
    [p * B / P, (p + 1) * B / P) of it, so a run resumed on another topology (or with
    another number of hosts) still sees the same global batches.

Data dir: `config.data_dir`, else $LPAAE_DATA_DIR, else $TFDS_DATA_DIR, else tfds's
default (~/tensorflow_datasets). Every check on the config and the data happens in
`check_dataset_available`, before anything is decoded or compiled; each error is one line.
TensorFlow is only used on the CPU (GPUs are hidden from it at import).
"""

import os
import socket
from typing import Iterator, Optional
import urllib.parse
import urllib.request

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from lpaae_jax import config_validation
from lpaae_jax import errors

IMAGE_SIZE = 32
# tfds name -> (native image side, channels); all have 10 classes.
DATASETS = {"mnist": (28, 1), "cifar10": (32, 3), "svhn_cropped": (32, 3)}
DATA_DIR_ENV_VARS = ("LPAAE_DATA_DIR", "TFDS_DATA_DIR")
_LOAD_BATCH = 4096  # examples per decode batch when loading a split into memory
PROBE_TIMEOUT_S = 5.0  # per download host, before tfds's own downloader starts
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}

Batch = dict[str, np.ndarray]


class DatasetUnavailableError(errors.LpaaeError, RuntimeError):
  """The dataset is not prepared in the data_dir and cannot (or may not) be downloaded."""


def _hide_gpus_from_tf() -> None:
  # TF only feeds the input pipeline; GPU memory belongs to JAX.
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices; nothing left to change.
    pass


_hide_gpus_from_tf()


def resolve_data_dir(config_data_dir: Optional[str]) -> Optional[str]:
  """The tfds data_dir: the config field, else $LPAAE_DATA_DIR, else $TFDS_DATA_DIR, else None."""
  for value in (config_data_dir, *(os.environ.get(name) for name in DATA_DIR_ENV_VARS)):
    if value:
      return os.path.expanduser(value)
  return None  # tfds's default


def _check_config(config: ml_collections.ConfigDict) -> None:
  """Config-only checks (no I/O): dataset name, image size and channels."""
  name = config.dataset
  if name not in DATASETS:
    raise config_validation.ConfigError(f"Unknown dataset {name!r} (config.dataset): supported "
                                        f"datasets are {', '.join(DATASETS)}.")
  _, channels = DATASETS[name]
  if config.model.channels != channels:
    raise config_validation.ConfigError(
        f"config.model.channels={config.model.channels!r} does not match dataset {name!r}, "
        f"which has {channels} channel(s): set --config.model.channels={channels}.")
  if config.model.image_size != IMAGE_SIZE:
    raise config_validation.ConfigError(
        f"config.model.image_size={config.model.image_size!r} is unsupported: the input "
        f"pipeline yields {IMAGE_SIZE}x{IMAGE_SIZE} images (MNIST is padded 28->{IMAGE_SIZE}).")


def check_dataset_available(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Validates the data config and makes sure the dataset is prepared; returns its builder.

  Downloads and prepares the dataset when it is missing and `config.download` is true.
  Raises ValueError for a bad config and DatasetUnavailableError when the data is missing
  (and may not or could not be downloaded), each with a one-line message.
  """
  _check_config(config)
  name = config.dataset
  data_dir = resolve_data_dir(config.data_dir)
  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  # builder.data_dir is <root>/<name>/<version>; none of the supported datasets has configs.
  root = os.path.dirname(os.path.dirname(os.fspath(builder.data_dir)))
  if not config.download:
    raise DatasetUnavailableError(
        f"Dataset {name!r} (version {builder.version}) is not prepared in data_dir {root!r} "
        f"and config.download=False: run `tfds build {name} --data_dir={root}`, point "
        f"--config.data_dir (or $LPAAE_DATA_DIR) at a data_dir that holds it, or pass "
        f"--config.download=True.")
  try:
    if _downloads(builder):
      check_download_hosts_reachable(builder)
    builder.download_and_prepare()
  except Exception as e:  # pylint: disable=broad-except  (network, disk, checksum, ...)
    raise DatasetUnavailableError(
        f"Could not download dataset {name!r} into data_dir {root!r} ({type(e).__name__}: {errors.first_line(e)}): run "
        f"`tfds build {name} --data_dir={root}` where there is network access, then point "
        f"--config.data_dir (or $LPAAE_DATA_DIR) at it.") from None
  return builder


def _downloads(builder: tfds.core.DatasetBuilder) -> bool:
  """Whether download_and_prepare is tfds's own, which fetches the data: tfds.testing's
  mock_data replaces it by a no-op that needs no network."""
  method = type(builder).download_and_prepare
  return getattr(method, "__module__", "").startswith("tensorflow_datasets.core.")


def check_download_hosts_reachable(builder: tfds.core.DatasetBuilder,
                                   timeout_s: float = PROBE_TIMEOUT_S) -> None:
  """Raises ConnectionError when no host of the dataset's download URLs accepts a connection.

  Without a network, tfds's downloader retries each URL ten times with backoff (3.5 minutes
  for MNIST) before it fails; one TCP connection per host (through the proxy when one is
  configured) tells in at most `timeout_s` seconds.
  """
  proxies = urllib.request.getproxies()
  hosts = set()
  for url in builder.url_infos or {}:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
      continue
    proxy = proxies.get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
      parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    hosts.add((parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)))
  failures = []
  for host, port in sorted(hosts):
    try:
      socket.create_connection((host, port), timeout=timeout_s).close()
      return  # tfds reports any other problem (a missing file, a checksum) itself
    except OSError as error:
      failures.append(f"{host}:{port}: {error}")
  if failures:
    raise ConnectionError(f"no network: cannot reach {'; '.join(failures)}")


def _raw_dataset(builder: tfds.core.DatasetBuilder, split: str,
                 num: Optional[int] = None) -> tf.data.Dataset:
  """(uint8 image, int32 label) pairs of a split, in the split's fixed order."""
  read_config = tfds.ReadConfig(try_autocache=False)
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
  ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)),
              num_parallel_calls=tf.data.AUTOTUNE)
  return ds.take(num) if num is not None else ds


def _to_numpy(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
  """Concatenates a dataset of (image, label) batches into two arrays."""
  images, labels = [], []
  for image_batch, label_batch in ds.prefetch(1).as_numpy_iterator():
    images.append(image_batch)
    labels.append(label_batch)
  if not images:
    return np.zeros((0,), np.float32), np.zeros((0,), np.int32)
  return np.concatenate(images), np.concatenate(labels)


def preprocess_images(images: tf.Tensor, image_size: int = IMAGE_SIZE) -> tf.Tensor:
  """uint8 (..., H, W, C) -> float32 in [-1, 1], padded to image_size with black (-1)."""
  height, width = images.shape[-3], images.shape[-2]
  pad_h, pad_w = image_size - height, image_size - width
  if pad_h < 0 or pad_w < 0 or pad_h % 2 or pad_w % 2:
    raise ValueError(f"Cannot pad {height}x{width} images to {image_size}x{image_size} "
                     "(needs an even, non-negative difference).")
  images = tf.cast(images, tf.float32) / 127.5 - 1.0
  if pad_h or pad_w:
    paddings = [[0, 0]] * (images.shape.rank - 3) + [
        [pad_h // 2, pad_h // 2], [pad_w // 2, pad_w // 2], [0, 0]]
    images = tf.pad(images, paddings, constant_values=-1.0)  # black, as MNIST's background
  return images


def load_split_arrays(config: ml_collections.ConfigDict, split: str,
                      num: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """The first `num` examples of a split (all when None), for evaluation.

  Returns (images float32 in [-1, 1] of shape (n, 32, 32, C), labels int32 of shape (n,)),
  in the split's fixed order, so repeated calls agree. n = min(num, split size).
  """
  if num is not None and num < 0:
    raise ValueError(f"num={num} must be >= 0 (or None for the whole split).")
  builder = check_dataset_available(config)
  ds = _raw_dataset(builder, split, num).batch(_LOAD_BATCH)
  ds = ds.map(lambda images, labels: (preprocess_images(images), labels),
              num_parallel_calls=tf.data.AUTOTUNE)
  images, labels = _to_numpy(ds)
  if not len(labels):
    _, channels = DATASETS[config.dataset]
    images = np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, channels), np.float32)
  return images, labels


# The decoded train split of the last datasets read, by (data_dir, split): each run,
# recalibration and experiment in one process reads the same split (decoding it takes seconds).
# Read-only, so no caller can change what the next one gets.
_TRAIN_ARRAYS: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
_TRAIN_ARRAYS_KEPT = 2


def _load_train_arrays(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  builder = check_dataset_available(config)
  read = lambda: _to_numpy(_raw_dataset(builder, config.train_split).batch(_LOAD_BATCH))
  if not _downloads(builder):  # tfds.testing.mock_data: examples vary with its arguments
    return read()
  key = (str(builder.data_path), config.train_split)
  if key not in _TRAIN_ARRAYS:
    arrays = read()
    for array in arrays:
      array.setflags(write=False)
    while len(_TRAIN_ARRAYS) >= _TRAIN_ARRAYS_KEPT:
      _TRAIN_ARRAYS.pop(next(iter(_TRAIN_ARRAYS)))
    _TRAIN_ARRAYS[key] = arrays
  return _TRAIN_ARRAYS[key]


def _check_sharding(batch_size: int, process_index: int, process_count: int) -> None:
  if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
    raise ValueError(f"config.batch_size={batch_size!r} must be a positive integer.")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must lie in [0, process_count="
                     f"{process_count}).")
  if batch_size % process_count:
    raise config_validation.ConfigError(
        f"config.batch_size={batch_size} (the global batch) must be divisible by the number "
        f"of processes, {process_count}.")


def batches_from_arrays(images: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int,
                        start_step: int = 0, end_step: Optional[int] = None,
                        process_index: int = 0, process_count: int = 1,
                        image_size: int = IMAGE_SIZE) -> Iterator[Batch]:
  """Batches of steps [start_step, end_step) (forever when None) from in-memory uint8 arrays.

  The global batch of step t is a pure function of (seed, t); this process yields its
  rows [process_index * b, (process_index + 1) * b), b = batch_size // process_count. See
  the module docstring for the design.
  """
  _check_sharding(batch_size, process_index, process_count)
  num_examples = len(labels)
  if num_examples < batch_size:
    raise config_validation.ConfigError(f"The train split has {num_examples} examples, fewer "
                                        f"than config.batch_size={batch_size}.")
  if start_step < 0:
    raise ValueError(f"start_step={start_step} must be >= 0.")
  steps_per_epoch = num_examples // batch_size
  local_batch = batch_size // process_count
  row_offset = process_index * local_batch
  images_t = tf.constant(images)
  labels_t = tf.constant(labels, tf.int32)
  max_index = tf.constant(num_examples - 1, tf.int64)
  seed_t = tf.constant(int(seed), tf.int64)
  rows = tf.range(local_batch, dtype=tf.int64) + row_offset

  def step_to_batch(step):
    epoch = step // steps_per_epoch
    positions = (step % steps_per_epoch) * batch_size + rows
    # Position -> example under epoch e's permutation of [0, N); no O(N) state.
    indices = tf.random.experimental.index_shuffle(positions, tf.stack([seed_t, epoch]),
                                                   max_index)
    images = preprocess_images(tf.gather(images_t, indices), image_size)
    return {"image": images, "label": tf.gather(labels_t, indices)}

  if end_step is None:
    steps = tf.data.Dataset.counter(start_step, dtype=tf.int64)
  else:
    steps = tf.data.Dataset.range(start_step, max(start_step, end_step), dtype=tf.int64)
  ds = steps.map(step_to_batch, num_parallel_calls=tf.data.AUTOTUNE)  # keeps step order
  return ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def create_train_iterator(config: ml_collections.ConfigDict, start_step: int = 0, *,
                          end_step: Optional[int] = None,
                          process_index: Optional[int] = None,
                          process_count: Optional[int] = None) -> Iterator[Batch]:
  """This process's share of the training batches of steps [start_step, end_step).

  Yields {"image": float32 (B_local, 32, 32, C) in [-1, 1], "label": int32 (B_local,)}
  with B_local = config.batch_size // process_count, forever when end_step is None.
  Starting at step k yields exactly what an iterator started at 0 yields from step k on.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  _check_config(config)
  _check_sharding(config.batch_size, process_index, process_count)
  images, labels = _load_train_arrays(config)
  return batches_from_arrays(images, labels, batch_size=config.batch_size, seed=config.seed,
                             start_step=start_step, end_step=end_step,
                             process_index=process_index, process_count=process_count)
