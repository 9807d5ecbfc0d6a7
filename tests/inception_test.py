"""Tests of lpaae_jax.evaluation.inception (FID InceptionV3) and convert_inception.

The parity tests need $LPAAE_INCEPTION_DIR holding pt_inception-2015-12-05_fid_nofc.npz
and cifar10_test_pool3_ref16.npz (pytorch-fid outputs). Without them they skip,
except when $CI is set, where they fail.
"""

import os
import pickle
import zipfile

import numpy as np
import pytest

from lpaae_jax import backend
from lpaae_jax.evaluation import convert_inception, inception

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
WEIGHTS_NAME = "pt_inception-2015-12-05_fid_nofc.npz"
REFERENCE_NAME = "cifar10_test_pool3_ref16.npz"
# Every network call below uses evaluate's batch and compiler options on CPU, so the net
# compiles once per head.
BATCH_SIZE = 2
COMPILER_OPTIONS = backend.from_fast_paths("auto").compiler_options()
POOL3_TOLERANCE = 1e-3


def _shared_file(name: str) -> str:
  directory = os.environ.get("LPAAE_INCEPTION_DIR")
  path = os.path.join(directory, name) if directory else None
  if path and os.path.isfile(path):
    return path
  reason = (f"{name} is not in $LPAAE_INCEPTION_DIR={directory}" if directory
            else "$LPAAE_INCEPTION_DIR (dir of the shared Inception weights/reference) is unset")
  if os.environ.get("CI"):
    pytest.fail(f"{reason}; CI must run the Inception parity tests.")
  pytest.skip(reason)


@pytest.fixture(scope="module")
def variables():
  return inception.load_inception_variables(_shared_file(WEIGHTS_NAME))


@pytest.fixture(scope="module")
def reference():
  with np.load(_shared_file(REFERENCE_NAME)) as data:
    return dict(data)


@pytest.fixture(scope="module")
def network_fn(variables):
  return inception.make_inception_fn(variables, BATCH_SIZE, preprocess=False,
                                     compiler_options=COMPILER_OPTIONS)


def _max_abs_diff(actual, expected) -> float:
  return float(np.max(np.abs(np.asarray(actual, np.float64) - expected)))


# --- Architecture and parity with pytorch-fid ------------------------------------------------


def test_network_variables_are_exactly_the_pytorch_fid_state_dict():
  with np.load(_shared_file(WEIGHTS_NAME)) as npz:
    file_shapes = {key: npz[key].shape for key in npz.files}
  expected = dict(inception.expected_state_dict_shapes(with_fc=False).values())
  assert expected == file_shapes
  with_fc = dict(inception.expected_state_dict_shapes(with_fc=True).values())
  assert with_fc == {**file_shapes, "fc.weight": (1008, 2048), "fc.bias": (1008,)}


def test_resize_matches_reference_network_inputs(reference):
  inputs = inception.preprocess_images(reference["images_uint8"][:2])
  diff = _max_abs_diff(inputs, reference["inputs_299_first2"])
  print(f"max |resize(uint8) - pytorch-fid input| = {diff:.3g}")
  assert inputs.shape == (2, 299, 299, 3)
  assert diff <= 1e-5


def _downscale_pattern() -> np.ndarray:
  # Same pattern as tests/data/make_tiny_torch_state_dict.py.
  rows, cols = np.meshgrid(np.arange(500), np.arange(420), indexing="ij")
  return ((rows * 7919 + cols * 104729 + rows * cols) % 256).astype(np.uint8)[None]


def test_resize_matches_torch_bilinear_when_downscaling_gray():
  with np.load(os.path.join(DATA_DIR, "torch_bilinear_downscale.npz")) as data:
    expected = data["every_13th_pixel"]
  inputs = np.asarray(inception.preprocess_images(_downscale_pattern()))
  assert inputs.shape == (1, 299, 299, 3)
  np.testing.assert_array_equal(inputs[..., 0], inputs[..., 2])  # Gray repeated to RGB.
  diff = _max_abs_diff(inputs[:, ::13, ::13, 0], expected)
  print(f"max |resize(500x420 gray) - torch F.interpolate| = {diff:.3g}")
  assert diff <= 1e-5


def test_pool3_of_reference_network_inputs(network_fn, reference):
  outputs = network_fn(reference["inputs_299_first2"])  # 2 images, zero-padded to the batch.
  diff = _max_abs_diff(outputs["pool3"], reference["pool3"][:2])
  print(f"max |pool3(reference inputs) - pytorch-fid pool3| = {diff:.3g}")
  assert outputs["pool3"].shape == (2, 2048) and outputs["pool3"].dtype == np.float32
  assert outputs["logits"] is None
  assert diff <= POOL3_TOLERANCE


def test_pool3_of_uint8_and_float_images(variables, reference):
  inception_fn = inception.make_inception_fn(variables, BATCH_SIZE,
                                             compiler_options=COMPILER_OPTIONS)
  images = reference["images_uint8"]
  pool3 = inception_fn(images)["pool3"]
  diff = _max_abs_diff(pool3, reference["pool3"])
  print(f"max |pool3(16 uint8 CIFAR-10 images) - pytorch-fid pool3| = {diff:.3g}")
  assert pool3.shape == (16, 2048)
  assert diff <= POOL3_TOLERANCE
  float_pool3 = inception_fn(images[:2 * BATCH_SIZE].astype(np.float64) / 255.0)["pool3"]
  np.testing.assert_allclose(float_pool3, pool3[:2 * BATCH_SIZE], atol=1e-4)
  assert inception_fn(images[:0])["pool3"].shape == (0, 2048)


def test_features_do_not_depend_on_the_batch_size(variables, reference):
  # evaluate runs Inception in small batches on CPU and large ones elsewhere.
  images = reference["images_uint8"][:5]
  small_batches = inception.make_inception_fn(
      variables, BATCH_SIZE, compiler_options=COMPILER_OPTIONS)(images)["pool3"]
  one_batch = inception.make_inception_fn(variables, 5)(images)["pool3"]
  np.testing.assert_allclose(small_batches, one_batch, atol=1e-4)


CPU_OPTIONS = backend.Backend(cpu=True).compiler_options()


@pytest.mark.skipif(not CPU_OPTIONS, reason="no CPU compiler options here")
def test_cpu_compiler_options_keep_the_features(variables, reference):
  # The CPU fast paths compile with their compiler options: the same network, within float
  # rounding of XLA's defaults (and of pytorch-fid, test_pool3_of_reference_network_inputs).
  inputs = reference["inputs_299_first2"]
  plain = inception.make_inception_fn(variables, BATCH_SIZE, preprocess=False)(inputs)
  with_options = inception.make_inception_fn(
      variables, BATCH_SIZE, preprocess=False, compiler_options=CPU_OPTIONS)(
          inputs)
  np.testing.assert_allclose(with_options["pool3"], plain["pool3"], atol=1e-4)


def test_fc_head_gives_1008_logits_from_torch_layout_weights(variables, reference):
  with np.load(_shared_file(WEIGHTS_NAME)) as npz:
    state_dict = {key: npz[key] for key in npz.files}
  rng = np.random.default_rng(0)
  state_dict["fc.weight"] = rng.normal(0.0, 0.01, (1008, 2048)).astype(np.float32)
  state_dict["fc.bias"] = rng.normal(0.0, 1.0, (1008,)).astype(np.float32)
  variables_with_fc = inception.variables_from_state_dict(state_dict)
  outputs = inception.make_inception_fn(variables_with_fc, BATCH_SIZE, preprocess=False)(
      reference["inputs_299_first2"])
  assert outputs["logits"].shape == (2, 1008)
  expected_logits = outputs["pool3"] @ state_dict["fc.weight"].T + state_dict["fc.bias"]
  np.testing.assert_allclose(outputs["logits"], expected_logits, atol=1e-4)
  assert _max_abs_diff(outputs["pool3"], reference["pool3"][:2]) <= POOL3_TOLERANCE


def test_logits_requested_from_weights_without_fc_raises(variables):
  with pytest.raises(ValueError, match="no 'fc' layer") as error:
    inception.make_inception_fn(variables, BATCH_SIZE, with_logits=True)
  assert "\n" not in str(error.value)


def test_bad_image_shapes_and_dtypes_raise():
  with pytest.raises(ValueError, match="1 or 3 channels"):
    inception.preprocess_images(np.zeros((1, 8, 8, 4), np.uint8))
  with pytest.raises(ValueError, match="uint8 or float"):
    inception.preprocess_images(np.zeros((1, 8, 8, 3), np.int64))


# --- Weights files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zero_state_dict():
  """A well-formed (all-zero) FID InceptionV3 state dict, no shared files needed."""
  return {key: np.zeros(shape, np.float32)
          for key, shape in inception.expected_state_dict_shapes(with_fc=False).values()}


def _load_error(tmp_path, state_dict) -> str:
  path = str(tmp_path / "weights.npz")
  np.savez_compressed(path, **state_dict)  # Zeros compress to almost nothing.
  with pytest.raises(ValueError) as error:
    inception.load_inception_variables(path)
  message = str(error.value)
  assert path in message and "\n" not in message
  return message


def test_well_formed_weights_load_in_flax_layout(tmp_path, zero_state_dict):
  path = str(tmp_path / "weights.npz")
  state_dict = dict(zero_state_dict)
  state_dict["Conv2d_1a_3x3.conv.weight"] = np.arange(32 * 3 * 3 * 3, dtype=np.float32).reshape(
      32, 3, 3, 3)
  state_dict["Conv2d_1a_3x3.bn.num_batches_tracked"] = np.array(0)  # Ignored.
  np.savez_compressed(path, **state_dict)
  loaded = inception.load_inception_variables(path)
  kernel = loaded["params"]["Conv2d_1a_3x3"]["conv"]["kernel"]
  torch_kernel = state_dict["Conv2d_1a_3x3.conv.weight"]
  np.testing.assert_array_equal(kernel, torch_kernel.transpose(2, 3, 1, 0))
  assert loaded["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"].shape == (192,)
  assert "fc" not in loaded["params"]


def test_weights_file_with_a_missing_key_raises(tmp_path, zero_state_dict):
  state_dict = dict(zero_state_dict)
  del state_dict["Mixed_6b.branch7x7_2.conv.weight"]
  message = _load_error(tmp_path, state_dict)
  assert "'Mixed_6b.branch7x7_2.conv.weight' is missing" in message
  assert "(128, 128, 1, 7)" in message


def test_weights_file_with_a_wrong_shape_raises(tmp_path, zero_state_dict):
  state_dict = dict(zero_state_dict)
  state_dict["Mixed_5b.branch1x1.bn.running_mean"] = np.zeros((65,), np.float32)
  message = _load_error(tmp_path, state_dict)
  assert "'Mixed_5b.branch1x1.bn.running_mean' has shape (65,), expected (64,)" in message


def test_weights_file_with_only_half_an_fc_raises(tmp_path, zero_state_dict):
  message = _load_error(tmp_path, {**zero_state_dict, "fc.bias": np.zeros(1008, np.float32)})
  assert "'fc.weight' is missing" in message


def test_weights_file_that_is_not_an_npz_raises(tmp_path):
  path = tmp_path / "weights.npz"
  path.write_bytes(b"not an npz")
  with pytest.raises(ValueError, match="unreadable InceptionV3 weights"):
    inception.load_inception_variables(str(path))
  np.save(path.with_suffix(".npy"), np.zeros(3))
  with pytest.raises(ValueError, match="not .npy"):
    inception.load_inception_variables(str(path.with_suffix(".npy")))


def test_missing_weights_file_says_where_to_get_it(tmp_path):
  path = str(tmp_path / "missing.npz")
  with pytest.raises(FileNotFoundError) as error:
    inception.load_inception_variables(path)
  message = str(error.value)
  assert "\n" not in message
  for part in (path, inception.RELEASE_PTH_URL, "6726825d",
               "python -m lpaae_jax.evaluation.convert_inception"):
    assert part in message


def test_weights_resolution_order(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.delenv(inception.WEIGHTS_ENV_VAR, raising=False)
  default_path = tmp_path / ".cache" / "lpaae_jax" / "pt_inception-2015-12-05.npz"
  with pytest.raises(FileNotFoundError, match=str(default_path)):
    inception.resolve_inception_weights()
  default_path.parent.mkdir(parents=True)
  default_path.touch()
  assert inception.resolve_inception_weights() == str(default_path)
  env_path = tmp_path / "from_env.npz"
  monkeypatch.setenv(inception.WEIGHTS_ENV_VAR, str(env_path))
  with pytest.raises(FileNotFoundError, match=inception.WEIGHTS_ENV_VAR):
    inception.resolve_inception_weights()
  env_path.touch()
  assert inception.resolve_inception_weights() == str(env_path)
  explicit_path = tmp_path / "explicit.npz"
  explicit_path.touch()
  assert inception.resolve_inception_weights(str(explicit_path)) == str(explicit_path)


# --- Converter ---------------------------------------------------------------------------------


def _expected_tiny_state_dict() -> dict:
  with np.load(os.path.join(DATA_DIR, "tiny_torch_state_dict_expected.npz")) as data:
    return {key: data[key] for key in data.files}


def _assert_same_arrays(actual: dict, expected: dict):
  assert list(actual) == list(expected)
  for key, value in expected.items():
    assert actual[key].dtype == value.dtype and actual[key].shape == value.shape, key
    np.testing.assert_array_equal(actual[key], value, err_msg=key)


@pytest.mark.parametrize("file_name", ["tiny_torch_state_dict.pth",  # zip, torch >= 1.6
                                       "tiny_torch_state_dict_legacy.pth"])
def test_reader_reads_torch_written_state_dicts(file_name):
  state_dict = convert_inception.read_torch_state_dict(os.path.join(DATA_DIR, file_name))
  _assert_same_arrays(state_dict, _expected_tiny_state_dict())


def test_converter_command_writes_every_key(tmp_path, capsys):
  out_path = str(tmp_path / "sub" / "tiny.npz")
  pth_path = os.path.join(DATA_DIR, "tiny_torch_state_dict.pth")
  assert convert_inception.main([f"--pth={pth_path}", f"--out={out_path}", "--no-check"]) == 0
  with np.load(out_path) as data:
    _assert_same_arrays({key: data[key] for key in data.files}, _expected_tiny_state_dict())
  assert os.listdir(tmp_path / "sub") == ["tiny.npz"]  # No temp file left behind.
  # With the default check, a file that isn't the FID InceptionV3 is refused, unwritten.
  other_out = str(tmp_path / "refused.npz")
  assert convert_inception.main([f"--pth={pth_path}", f"--out={other_out}"]) == 1
  assert "bad InceptionV3 weights" in capsys.readouterr().err
  assert not os.path.exists(other_out)


def test_reader_refuses_unexpected_globals(tmp_path):
  path = tmp_path / "evil.pth"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("evil/data.pkl", pickle.dumps(os.getcwd))
  with pytest.raises(ValueError, match="not expected in a torch state dict"):
    convert_inception.read_torch_state_dict(str(path))


def test_converter_refuses_a_release_file_whose_sha256_prefix_differs(tmp_path, capsys):
  """A file named like the release whose sha256 does not start with the name's 6726825d
  (a corrupt or partial download) is refused before anything is written."""
  fake_release = tmp_path / inception.RELEASE_PTH_NAME
  fake_release.write_bytes(open(os.path.join(DATA_DIR, "tiny_torch_state_dict.pth"),
                                "rb").read())
  out_path = tmp_path / "out.npz"
  assert convert_inception.main([f"--pth={fake_release}", f"--out={out_path}"]) == 1
  assert "corrupt or partial download" in capsys.readouterr().err
  assert not out_path.exists()
