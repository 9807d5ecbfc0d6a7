"""The artefact statistics: about 1 on real images, clearly more with a lattice or colour grain."""

import numpy as np
import pytest

from lpaae_jax.configs import cifar10
from lpaae_jax import input_pipeline
from lpaae_jax.evaluation import artifacts


@pytest.fixture(scope="module")
def real_test_images(real_data_dir):
  config = cifar10.get_config()
  config.data_dir, config.download = str(real_data_dir), False
  images, _ = input_pipeline.load_split_arrays(config, "test", num=2000)
  return images


def test_real_images_read_about_one(real_test_images):
  ratios = artifacts.artifact_ratios(real_test_images[1000:], real_test_images[:1000])
  assert set(ratios) == {"lattice_ratio_p2", "lattice_ratio_p4", "lattice_ratio_p8",
                         "colour_grain_ratio"}
  for name, ratio in ratios.items():
    assert 0.5 < ratio < 1.5, (name, ratio)  # noise of 1000 images; the targets are <= 2


@pytest.mark.parametrize("period", artifacts.PERIODS)
def test_a_periodic_pattern_of_known_size_reads_far_above_real(real_test_images, period):
  rng = np.random.default_rng(period)
  pattern = rng.normal(size=(period, period, 3))
  pattern = 0.06 * (pattern - pattern.mean()) / pattern.std()  # RMS 3% of the range
  tiled = np.tile(pattern, (32 // period, 32 // period, 1))
  patterned = np.clip(real_test_images[1000:] + tiled, -1, 1)
  ratios = artifacts.artifact_ratios(patterned, real_test_images[:1000])
  assert ratios[f"lattice_ratio_p{period}"] > 4, ratios
  # Shifted by half a period, the pattern is another one, as clear.
  shifted = np.clip(real_test_images[1000:] + np.roll(tiled, period // 2, axis=1), -1, 1)
  assert artifacts.artifact_ratios(shifted, real_test_images[:1000])[
      f"lattice_ratio_p{period}"] > 4


def test_colour_noise_reads_as_grain_and_gray_noise_does_not(real_test_images):
  rng = np.random.default_rng(0)
  images = real_test_images[1000:]
  colour = np.clip(images + 0.05 * rng.normal(size=images.shape), -1, 1)
  gray = np.clip(images + 0.05 * rng.normal(size=images.shape[:-1] + (1,)), -1, 1)
  real = real_test_images[:1000]
  assert artifacts.artifact_ratios(colour, real)["colour_grain_ratio"] > 3
  assert artifacts.artifact_ratios(gray, real)["colour_grain_ratio"] < 1.5


def test_uint8_and_float_images_agree_and_gray_has_no_grain():
  rng = np.random.default_rng(1)
  uint8 = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
  floats = uint8.astype(np.float32) / 127.5 - 1
  assert artifacts.lattice_rms(uint8, 4) == pytest.approx(artifacts.lattice_rms(floats, 4))
  assert "colour_grain_ratio" not in artifacts.artifact_ratios(floats[..., :1], floats[..., :1])
  with pytest.raises(ValueError, match="blocks"):
    artifacts.lattice_rms(floats[:, :30], 4)
