"""Tests of lpaae_jax.input_pipeline: values, determinism/resume, sharding and errors.

Real-data tests read a TFDS data_dir from $LPAAE_DATA_DIR (mnist and cifar10) and skip
when it is unset or lacks the dataset, except under CI (env CI set), where they fail.
"""

import os
import pathlib
import socket
import time
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lpaae_jax.configs import cifar10 as cifar10_config
from lpaae_jax.configs import mnist as mnist_config
from lpaae_jax import input_pipeline
from tests.helpers import apply_overrides

CONFIGS = {"mnist": mnist_config, "cifar10": cifar10_config}
CHANNELS = {"mnist": 1, "cifar10": 3}


def make_config(dataset="mnist", **overrides):
  config = CONFIGS[dataset].get_config()
  config.batch_size = 16
  return apply_overrides(config, **overrides)


def require_real(dataset: str) -> str:
  """$LPAAE_DATA_DIR when it holds `dataset`; otherwise skip (fail under CI)."""
  data_dir = os.environ.get("LPAAE_DATA_DIR")
  if not data_dir:
    message = "real data not available: set LPAAE_DATA_DIR to a TFDS data_dir"
  elif not tfds.builder(dataset, data_dir=data_dir).is_prepared():
    message = f"{dataset} is not prepared in LPAAE_DATA_DIR={data_dir}"
  else:
    return data_dir
  if os.environ.get("CI"):
    pytest.fail(message + " -- required under CI")
  pytest.skip(message)


def real_config(dataset, **overrides):
  return make_config(dataset, data_dir=require_real(dataset), download=False, **overrides)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])


def assert_image_batch(batch, size, channels):
  images, labels = batch["image"], batch["label"]
  assert images.shape == (size, 32, 32, channels) and images.dtype == np.float32
  assert labels.shape == (size,) and labels.dtype == np.int32
  assert images.min() >= -1.0 and images.max() <= 1.0
  assert labels.min() >= 0 and labels.max() < 10


def assert_one_line(excinfo, *words):
  message = str(excinfo.value)
  assert "\n" not in message, message
  for word in words:
    assert word in message, (word, message)


# ---------------------------------------------------------------------------- real data


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_real_train_batch(dataset):
  config = real_config(dataset, batch_size=256)
  batch = next(input_pipeline.create_train_iterator(config))
  assert_image_batch(batch, 256, CHANNELS[dataset])
  images = batch["image"]
  # The full [-1, 1] range is used (uint8 0 -> -1, 255 -> 1).
  assert images.min() == -1.0 and images.max() == 1.0
  assert len(np.unique(batch["label"])) > 5
  if dataset == "mnist":
    # Padded with the background (DESIGN §1): a 2-pixel border of -1 (black), like the
    # digit's own background.
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(images[:, border] == -1.0)
    assert np.mean(images[:, 2:30, 2:30] == -1.0) > 0.5


def test_real_train_split_is_decoded_once_per_process_and_read_only():
  config = real_config("mnist", batch_size=64)
  images, labels = input_pipeline._load_train_arrays(config)  # pylint: disable=protected-access
  again = input_pipeline._load_train_arrays(config)  # pylint: disable=protected-access
  assert again[0] is images and again[1] is labels and len(labels) == 60_000
  assert not images.flags.writeable and not labels.flags.writeable
  # mock_data's examples depend on its arguments: never served from (or into) the cache.
  with tfds.testing.mock_data(num_examples=40):
    mocked, _ = input_pipeline._load_train_arrays(  # pylint: disable=protected-access
        apply_overrides(config.copy_and_resolve_references(), download=True))
  assert len(mocked) == 40
  assert input_pipeline._load_train_arrays(config)[0] is images  # pylint: disable=protected-access


def test_real_resume_matches_uninterrupted_run():
  config = real_config("cifar10", batch_size=64)
  uninterrupted = take(input_pipeline.create_train_iterator(config), 4)
  resumed = take(input_pipeline.create_train_iterator(config, start_step=2), 2)
  assert_batches_equal(uninterrupted[2:], resumed)
  assert not np.array_equal(uninterrupted[0]["label"], uninterrupted[1]["label"])


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_real_eval_arrays_deterministic(dataset):
  config = real_config(dataset)
  images, labels = input_pipeline.load_split_arrays(config, config.eval_split, num=300)
  assert_image_batch({"image": images, "label": labels}, 300, CHANNELS[dataset])
  images_2, labels_2 = input_pipeline.load_split_arrays(config, config.eval_split, num=100)
  np.testing.assert_array_equal(images[:100], images_2)
  np.testing.assert_array_equal(labels[:100], labels_2)


# ---------------------------------------------------------------------------- mock data


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_mock_data_with_download(dataset, tmp_path):
  # Plain mock_data: the dataset is "missing" and download_and_prepare is a no-op.
  config = make_config(dataset, data_dir=str(tmp_path), download=True)
  with tfds.testing.mock_data(num_examples=40):
    batches = take(input_pipeline.create_train_iterator(config, process_index=0,
                                                        process_count=1), 3)
    images, labels = input_pipeline.load_split_arrays(config, "test", num=10)
  for batch in batches:
    assert_image_batch(batch, 16, CHANNELS[dataset])
  assert images.shape == (10, 32, 32, CHANNELS[dataset]) and labels.dtype == np.int32
  if dataset == "mnist":
    assert np.all(images[:, :2] == -1.0) and np.all(batches[0]["image"][:, :, -2:] == -1.0)


def _write_metadata(dataset: str, root: pathlib.Path) -> str:
  """A data_dir holding only the dataset's metadata, so mock_data sees it as prepared."""
  builder = tfds.builder(dataset, data_dir=str(root))
  variant_dir = root / dataset / str(builder.version)
  variant_dir.mkdir(parents=True)
  builder.info.write_to_directory(variant_dir)
  return str(root)


def test_mock_data_with_metadata_and_no_download(tmp_path):
  data_dir = _write_metadata("mnist", tmp_path)
  config = make_config("mnist", data_dir=data_dir, download=False)
  with tfds.testing.mock_data(num_examples=48, data_dir=data_dir):
    single = take(input_pipeline.create_train_iterator(config, process_index=0,
                                                       process_count=1), 4)
    shards = [take(input_pipeline.create_train_iterator(config, process_index=p,
                                                        process_count=2), 4)
              for p in range(2)]
  for batch in single:
    assert_image_batch(batch, 16, 1)
  for step, batch in enumerate(single):
    for key in ("image", "label"):
      np.testing.assert_array_equal(
          np.concatenate([shards[0][step][key], shards[1][step][key]]), batch[key])


# ------------------------------------------------------- determinism (synthetic arrays)

NUM_EXAMPLES = 100  # 6 steps of 16 per epoch; 4 examples dropped per epoch


def synthetic_arrays():
  """Example i has label i and every pixel i, so batches reveal the indices they drew."""
  index = np.arange(NUM_EXAMPLES)
  images = np.broadcast_to(index[:, None, None, None], (NUM_EXAMPLES, 28, 28, 1))
  return images.astype(np.uint8), index.astype(np.int32)


def synthetic_batches(start_step=0, end_step=None, seed=0, batch_size=16, **kwargs):
  images, labels = synthetic_arrays()
  return input_pipeline.batches_from_arrays(images, labels, batch_size=batch_size, seed=seed,
                                            start_step=start_step, end_step=end_step,
                                            **kwargs)


def test_synthetic_images_match_labels_and_padding():
  for batch in synthetic_batches(end_step=7):
    assert_image_batch({"image": batch["image"], "label": batch["label"] % 10}, 16, 1)
    expected = batch["label"].astype(np.float32) / 127.5 - 1.0
    np.testing.assert_array_equal(batch["image"][:, 16, 16, 0], expected)
    assert np.all(batch["image"][:, :2] == -1.0) and np.all(batch["image"][:, :, 30:] == -1.0)


@pytest.mark.parametrize("start_step", [1, 5, 6, 13])
def test_resume_from_any_step(start_step):
  uninterrupted = list(synthetic_batches(end_step=start_step + 4))
  resumed = list(synthetic_batches(start_step=start_step, end_step=start_step + 4))
  assert_batches_equal(uninterrupted[start_step:], resumed)


def test_infinite_iterator_matches_finite_one():
  assert_batches_equal(take(synthetic_batches(start_step=3), 5),
                       list(synthetic_batches(start_step=3, end_step=8)))


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_shards_concatenate_to_global_batch(process_count):
  global_batches = list(synthetic_batches(start_step=4, end_step=9))
  shards = [list(synthetic_batches(start_step=4, end_step=9, process_index=p,
                                   process_count=process_count))
            for p in range(process_count)]
  for step, batch in enumerate(global_batches):
    for key in ("image", "label"):
      assert all(len(shard[step][key]) == 16 // process_count for shard in shards)
      np.testing.assert_array_equal(
          np.concatenate([shard[step][key] for shard in shards]), batch[key])


def test_epochs_cover_distinct_examples_and_reshuffle():
  steps_per_epoch = NUM_EXAMPLES // 16
  batches = list(synthetic_batches(end_step=3 * steps_per_epoch))
  epochs = [np.concatenate([b["label"] for b in batches[e * steps_per_epoch:
                                                        (e + 1) * steps_per_epoch]])
            for e in range(3)]
  for order in epochs:
    assert len(order) == steps_per_epoch * 16
    assert len(np.unique(order)) == len(order)  # no duplicates within an epoch
  assert not np.array_equal(epochs[0], epochs[1])
  assert not np.array_equal(epochs[1], epochs[2])
  # Across epochs, different examples are dropped, so all of them are eventually seen.
  assert len(np.unique(np.concatenate(epochs))) > steps_per_epoch * 16


def test_seed_changes_order():
  a = next(synthetic_batches(seed=0))["label"]
  b = next(synthetic_batches(seed=1))["label"]
  assert not np.array_equal(a, b)


# ---------------------------------------------------------------------------- errors


def test_unknown_dataset():
  config = make_config("mnist")
  config.dataset = "imagenet2012"
  with pytest.raises(ValueError) as excinfo:
    input_pipeline.check_dataset_available(config)
  assert_one_line(excinfo, "imagenet2012", "mnist", "cifar10", "svhn_cropped")


def test_missing_dataset_without_download(tmp_path):
  config = make_config("mnist", data_dir=str(tmp_path), download=False)
  with pytest.raises(input_pipeline.DatasetUnavailableError) as excinfo:
    input_pipeline.create_train_iterator(config, process_index=0, process_count=1)
  assert_one_line(excinfo, "'mnist'", str(tmp_path), "tfds build mnist", "--config.data_dir",
                  "LPAAE_DATA_DIR", "--config.download=True")


def test_failed_download(tmp_path, monkeypatch):
  def no_network(self, *args, **kwargs):
    raise ConnectionError("Max retries exceeded with url: /mnist.gz\n(Caused by ...)")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
  config = make_config("mnist", data_dir=str(tmp_path), download=True)
  with pytest.raises(input_pipeline.DatasetUnavailableError) as excinfo:
    input_pipeline.load_split_arrays(config, "test", num=4)
  assert_one_line(excinfo, "'mnist'", str(tmp_path), "ConnectionError", "tfds build mnist")
  assert excinfo.value.__cause__ is None


def test_unreachable_download_hosts_fail_at_once(tmp_path, monkeypatch):
  # Every request through a proxy port nobody listens on: tfds would retry for minutes.
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
    monkeypatch.delenv(name, raising=False)
  for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
    monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
  builder = tfds.builder("mnist", data_dir=str(tmp_path))
  start = time.perf_counter()
  with pytest.raises(ConnectionError, match=f"no network: cannot reach 127.0.0.1:{port}"):
    input_pipeline.check_download_hosts_reachable(builder, timeout_s=2)
  assert time.perf_counter() - start < 10
  # Builders without recorded download URLs are left to tfds.
  input_pipeline.check_download_hosts_reachable(types.SimpleNamespace(url_infos=None))


def test_channels_mismatch_before_any_io(tmp_path):
  config = make_config("mnist", data_dir=str(tmp_path / "absent"), download=False)
  config.model.channels = 3
  with pytest.raises(ValueError) as excinfo:
    input_pipeline.check_dataset_available(config)
  assert_one_line(excinfo, "model.channels", "'mnist'", "1")
  assert not (tmp_path / "absent").exists()


def test_batch_not_divisible_by_process_count(tmp_path):
  config = make_config("mnist", data_dir=str(tmp_path), download=False)  # checked first
  with pytest.raises(ValueError) as excinfo:
    input_pipeline.create_train_iterator(config, process_index=0, process_count=3)
  assert_one_line(excinfo, "batch_size=16", "3")


def test_resolve_data_dir(monkeypatch):
  monkeypatch.delenv("LPAAE_DATA_DIR", raising=False)
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  assert input_pipeline.resolve_data_dir(None) is None
  monkeypatch.setenv("TFDS_DATA_DIR", "/tfds")
  assert input_pipeline.resolve_data_dir(None) == "/tfds"
  monkeypatch.setenv("LPAAE_DATA_DIR", "/lpaae")
  assert input_pipeline.resolve_data_dir(None) == "/lpaae"
  assert input_pipeline.resolve_data_dir("/config") == "/config"
