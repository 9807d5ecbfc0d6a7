"""Tests of the evaluation: disentanglement metrics, figures, the judge, evaluate_states, FID.

Real-data tests need $LPAAE_DATA_DIR (tfds mnist, cifar10) and $LPAAE_INCEPTION_DIR (the
FID Inception weights); they skip without them (fail under CI). Inception runs ~0.2 s per
image on a 2-core CPU, so the FID test uses few images: $LPAAE_FID_TEST_IMAGES per half.
"""

import json
import logging
import os
import warnings

import jax
import numpy as np
import pytest
from PIL import Image

import lpaae_jax
from lpaae_jax import backend
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import input_pipeline
from lpaae_jax.evaluation import disentanglement, figures, inception, judge, metrics
from tests.helpers import tiny_config

WEIGHTS_NAME = "pt_inception-2015-12-05_fid_nofc.npz"
EVAL_BATCH = 10
FID_IMAGES_PER_HALF = int(os.environ.get("LPAAE_FID_TEST_IMAGES", "32"))


# --- Hungarian / conditional accuracy ------------------------------------------------------


def test_hungarian_accuracy_of_a_permuted_labelling_is_one():
  rng = np.random.default_rng(0)
  target = rng.integers(0, 10, 500)
  permutation = rng.permutation(10)
  accuracy, mapping = disentanglement.hungarian_match(permutation[target], target)
  assert accuracy == 1.0
  assert mapping == {int(permutation[k]): k for k in range(10)}
  assert disentanglement.cluster_accuracy(permutation[target], target) == 1.0


def test_cluster_accuracy_of_a_known_confusion():
  s = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
  judge_labels = np.array([1, 1, 0, 2, 2, 2, 0, 0, 1])
  # Best matching by hand: s0->1 (2 hits), s1->2 (3), s2->0 (2): 7 of 9.
  assert disentanglement.cluster_accuracy(judge_labels, s) == pytest.approx(7 / 9)
  # Without relabelling only s=... positions where label == s count: none here but one.
  assert disentanglement.conditional_accuracy(judge_labels, s) == pytest.approx(1 / 9)


def test_cluster_accuracy_when_some_clusters_are_empty():
  # Generated s uses 3 values, the judge says 5 classes: rectangular matching.
  s = np.array([0, 0, 1, 1, 2, 2])
  judge_labels = np.array([4, 4, 3, 3, 3, 1])
  assert disentanglement.cluster_accuracy(judge_labels, s, num_classes=10) == pytest.approx(
      5 / 6)


def test_per_class_accuracy():
  s = np.array([0, 0, 1, 1])
  per_class = disentanglement.per_class_accuracy(np.array([0, 1, 1, 1]), s, 3)
  np.testing.assert_allclose(per_class[:2], [0.5, 1.0])
  assert np.isnan(per_class[2])


def test_label_checks():
  with pytest.raises(ValueError, match="non-negative integer"):
    disentanglement.cluster_accuracy(np.array([0.5, 1.0]), np.array([0, 1]))
  with pytest.raises(ValueError, match="must be equal"):
    disentanglement.conditional_accuracy(np.array([0, 1]), np.array([0, 1, 2]))


def test_balanced_conditions_cycle_through_the_classes():
  np.testing.assert_array_equal(disentanglement.balanced_conditions(5, 3, start=2),
                                [2, 0, 1, 2, 0])


# --- k-means ------------------------------------------------------------------------------


def test_kmeans_of_well_separated_clusters_is_perfect():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(10), 30)
  centres = 20.0 * rng.normal(size=(10, 16))
  codes = centres[labels] + rng.normal(size=(len(labels), 16))
  scores = disentanglement.kmeans_code_scores(codes, labels, num_clusters=10)
  assert scores["kmeans_accuracy"] == pytest.approx(1.0)
  assert scores["kmeans_nmi"] == pytest.approx(1.0)


def test_code_alignment_reads_classes_off_the_prior_samples_where_they_line_up():
  rng = np.random.default_rng(2)
  centres = 10.0 * rng.normal(size=(10, 8))
  prior_s = np.repeat(np.arange(10), 40)
  prior_codes = centres[prior_s] + rng.normal(size=(400, 8))
  labels = np.repeat(np.arange(10), 20)
  codes = centres[labels] + rng.normal(size=(200, 8))
  assert disentanglement.code_alignment_accuracy(codes, labels, prior_codes,
                                                 prior_s) == pytest.approx(1.0)
  # Each class's codes where another s lies (a permutation): nothing lines up.
  assert disentanglement.code_alignment_accuracy(codes, (labels + 1) % 10, prior_codes,
                                                 prior_s) == 0.0
  with pytest.raises(ValueError, match="pair up"):
    disentanglement.code_alignment_accuracy(codes[:, :4], labels, prior_codes, prior_s)


def test_kmeans_of_structureless_codes_is_near_chance():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(10), 50)
  scores = disentanglement.kmeans_code_scores(rng.normal(size=(500, 8)), labels)
  assert scores["kmeans_accuracy"] < 0.3 and scores["kmeans_nmi"] < 0.15


# --- FID moments ----------------------------------------------------------------------------


def test_running_feature_moments_match_feature_stats():
  features = np.random.default_rng(0).normal(0.5, 2.0, (103, 7))
  moments = evaluate.FeatureMoments()
  for start in range(0, 103, 10):
    moments.update(features[start:start + 10])
  mean, covariance = moments.stats()
  expected_mean, expected_covariance = metrics.feature_stats(features)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
  np.testing.assert_allclose(covariance, expected_covariance, rtol=1e-10, atol=1e-12)


# --- Figures (no model) -------------------------------------------------------------------


def test_progress_logs_an_eta_at_most_every_interval_and_when_done(caplog):
  now = [0.0]
  caplog.set_level(logging.INFO)
  progress = evaluate.Progress("Samples", 100, every_s=10, clock=lambda: now[0])
  for done, seconds in ((10, 1.0), (20, 11.0), (30, 12.0), (100, 13.0)):
    now[0] = seconds
    progress.update(done)
  assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Samples")] == [
      "Samples: 100 to do.", "Samples: 20 of 100 (20%), 11 s, ETA 44 s.",
      "Samples: 100 done in 13 s."]


def test_image_grid_places_images_row_major():
  images = np.stack([np.full((2, 3, 1), value, np.uint8) for value in range(5)])
  grid = figures.image_grid(images, ncols=3)
  assert grid.shape == (4, 9, 1) and grid.dtype == np.uint8
  assert grid[0, 3, 0] == 1 and grid[2, 0, 0] == 3 and grid[2, 3, 0] == 4
  assert grid[2, 6, 0] == 0  # The missing sixth tile.


def test_image_grid_maps_minus_one_to_one_onto_uint8():
  grid = figures.image_grid(np.array([-1.0, 0.0, 1.0, 2.0]).reshape(4, 1, 1, 1), ncols=4)
  np.testing.assert_array_equal(grid[0, :, 0], [0, 128, 255, 255])


def test_tsne_figure_of_codes_alone_and_with_prior_samples(tmp_path):
  rng = np.random.default_rng(0)
  codes, labels = rng.normal(size=(40, 6)), np.arange(40) % 10
  single = figures.tsne_figure(codes, labels, path=str(tmp_path / "fixed.png"))
  triple = figures.tsne_figure(codes, labels, rng.normal(size=(30, 6)), np.arange(30) % 10,
                               path=str(tmp_path / "learned.png"))
  assert single.ndim == 3 and single.shape[-1] == 3 and single.dtype == np.uint8
  assert triple.shape[0] == single.shape[0] and triple.shape[1] > 2 * single.shape[1]
  assert Image.open(tmp_path / "learned.png").size == triple.shape[1::-1]
  # Condition 'none': CG samples with no s.
  figures.tsne_figure(codes, labels, rng.normal(size=(30, 6)), None)


# --- Figures of a tiny model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def supervised_states():
  return lpaae_jax.create_states(tiny_config("supervised", "learned"), jax.random.key(0))


def test_figure3_grid_columns_hold_each_s_and_rows_share_noise(supervised_states, tmp_path):
  states, rows, size = supervised_states, 3, 32
  key = jax.random.key(7)
  grid = figures.figure3_grid(states, key, rows=rows, path=str(tmp_path / "grid.png"))
  assert grid.shape == (rows * size, 10 * size, 1) and grid.dtype == np.uint8
  assert Image.open(tmp_path / "grid.png").size == (10 * size, rows * size)

  noise, s = figures.figure3_inputs(states.spec, key, rows)
  row_noise = np.asarray(noise)[::10]
  np.testing.assert_array_equal(np.asarray(noise), np.repeat(row_noise, 10, axis=0))
  np.testing.assert_array_equal(np.asarray(s), np.tile(np.arange(10), rows))
  # Column j is dec(CG([z_r; s=j])): decode the same noise with every s set to j.
  for column in (0, 3, 9):
    expected = figures.to_uint8(lpaae_jax.decode_noise(states, noise, np.full(10 * rows, column)))
    for row in range(rows):
      tile = grid[row * size:(row + 1) * size, column * size:(column + 1) * size]
      np.testing.assert_array_equal(tile, expected[row * 10])
  first, last = grid[:size, :size], grid[:size, 9 * size:]
  assert not np.array_equal(first, last)  # s changes the sample.


def test_figure3_grid_without_condition_is_a_plain_grid():
  config = tiny_config("none", "fixed")
  states = lpaae_jax.create_states(config, jax.random.key(1))
  grid = figures.figure3_grid(states, jax.random.key(2), rows=2)
  assert grid.shape == (64, 320, 1)
  noise, s = figures.figure3_inputs(states.spec, jax.random.key(2), 2)
  assert s is None and noise.shape == (20, states.spec.noise_size)
  np.testing.assert_array_equal(grid, figures.image_grid(lpaae_jax.decode_noise(states, noise),
                                                         10))


def test_reconstruction_pairs_put_each_real_image_beside_its_reconstruction(
    supervised_states):
  images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 1)).astype(np.float32)
  grid = figures.reconstruction_pairs(supervised_states, images)
  assert grid.shape == (32, 6 * 32, 1)
  reconstructions = figures.to_uint8(lpaae_jax.reconstruct(supervised_states, images))
  for index in range(3):
    np.testing.assert_array_equal(grid[:, 64 * index:64 * index + 32],
                                  figures.to_uint8(images[index]))
    np.testing.assert_array_equal(grid[:, 64 * index + 32:64 * (index + 1)],
                                  reconstructions[index])


# --- Judge ----------------------------------------------------------------------------------


def _mnist_config(real_data_dir, **overrides):
  return tiny_config("supervised", "learned", data_dir=str(real_data_dir), download=False,
                     **overrides)


def test_judge_learns_mnist_and_round_trips(trained_judge_dir, real_data_dir):
  with open(os.path.join(trained_judge_dir, judge.JSON_NAME)) as info_file:
    info = json.load(info_file)
  assert info["dataset"] == "mnist" and info["steps"] == 150 and info["num_test"] == 2000
  assert info["test_accuracy"] > 0.8, info  # Chance is 0.1.

  loaded = judge.load_judge(trained_judge_dir, dataset="mnist")
  images, labels = input_pipeline.load_split_arrays(
      _mnist_config(real_data_dir), "test", num=2000)
  predictions = judge.judge_predict(loaded, images, batch_size=500)
  assert np.mean(predictions == labels) == pytest.approx(info["test_accuracy"])
  # Either file names the same judge.
  same = judge.load_judge(os.path.join(trained_judge_dir, judge.PARAMS_NAME))
  np.testing.assert_array_equal(judge.judge_fn(same, images[:7], batch_size=500),
                                judge.judge_fn(loaded, images[:7], batch_size=500))


def test_judge_features_separate_real_digits_from_noise(trained_judge_dir, real_data_dir):
  # The judge's hidden layer as an FID embedding: two halves of the real test split are
  # close, real vs uniform noise is far.
  loaded = judge.load_judge(trained_judge_dir, dataset="mnist")
  images, _ = input_pipeline.load_split_arrays(_mnist_config(real_data_dir), "test", num=1000)
  noise = np.random.default_rng(0).uniform(-1, 1, images[:500].shape).astype(np.float32)
  outputs = judge.judge_outputs(loaded, np.concatenate([images, noise]), batch_size=500)
  features = outputs["features"]
  assert features.shape == (1500, loaded.module.hidden)
  np.testing.assert_array_equal(np.argmax(outputs["logits"][:7], -1),
                                judge.judge_predict(loaded, images[:7]))
  first, second, uniform = (metrics.feature_stats(features[a:a + 500]) for a in (0, 500, 1000))
  assert metrics.fid_from_stats(*first, *second) < 0.2 * metrics.fid_from_stats(*first,
                                                                                *uniform)


def test_judge_of_another_dataset_is_refused(trained_judge_dir):
  with pytest.raises(judge.JudgeUnavailableError, match="trained on 'mnist', not 'cifar10'"):
    judge.load_judge(trained_judge_dir, dataset="cifar10")


def test_missing_judge_names_the_file_and_the_command(tmp_path):
  with pytest.raises(judge.JudgeUnavailableError) as error:
    judge.load_judge(str(tmp_path / "nowhere"), dataset="mnist")
  message = str(error.value)
  assert "\n" not in message and str(tmp_path / "nowhere" / judge.JSON_NAME) in message
  assert "python -m lpaae_jax.evaluation.judge --config=configs/mnist.py" in message


def _write_fake_judge(out_dir, params_bytes):
  info = {"dataset": "mnist", "num_classes": 10, "widths": [4], "hidden": 8,
          "image_shape": [32, 32, 1], "params_file": judge.PARAMS_NAME}
  with open(os.path.join(out_dir, judge.JSON_NAME), "w") as info_file:
    json.dump(info, info_file)
  with open(os.path.join(out_dir, judge.PARAMS_NAME), "wb") as params_file:
    params_file.write(params_bytes)


def test_corrupt_judge_files_name_the_file_and_the_command(tmp_path):
  _write_fake_judge(tmp_path, b"\xc1 not msgpack")
  with pytest.raises(judge.JudgeUnavailableError, match="corrupt params") as error:
    judge.load_judge(str(tmp_path))
  assert str(tmp_path / judge.PARAMS_NAME) in str(error.value)
  assert "--out=" + str(tmp_path) in str(error.value)

  module = judge.JudgeCNN(widths=(4,), hidden=8)
  params = module.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))["params"]
  _write_fake_judge(tmp_path, judge.serialization.msgpack_serialize(jax.device_get(params)))
  with pytest.raises(judge.JudgeUnavailableError, match="has shape"):
    judge.load_judge(str(tmp_path))  # Params of 3-channel images, info says 1.

  (tmp_path / judge.JSON_NAME).write_text("{ truncated")
  with pytest.raises(judge.JudgeUnavailableError, match="unreadable judge info"):
    judge.load_judge(str(tmp_path / judge.JSON_NAME))


# --- evaluate_states end to end -------------------------------------------------------------


class _RecordingWriter:
  """The part of clu's MetricWriter that evaluate_states uses."""

  def __init__(self):
    self.scalars, self.images, self.flushed = {}, {}, False

  def write_scalars(self, step, scalars):
    self.scalars[step] = dict(scalars)

  def write_images(self, step, images):
    self.images[step] = dict(images)

  def flush(self):
    self.flushed = True


def test_evaluate_states_end_to_end_on_mnist(supervised_states, trained_judge_dir,
                                             real_data_dir, inception_dir, tmp_path, caplog):
  caplog.set_level(logging.INFO)
  config = _mnist_config(real_data_dir, **{
      "eval.num_samples": 20, "eval.batch_size": EVAL_BATCH,
      "eval.num_real_samples": 30, "eval.num_tsne_points": 30,
      "eval.inception_weights": str(inception_dir / WEIGHTS_NAME)})
  writer = _RecordingWriter()
  results = evaluate.evaluate_states(config, supervised_states, str(tmp_path),
                                     judge_path=trained_judge_dir, writer=writer, step=5)

  with open(tmp_path / evaluate.METRICS_FILE) as metrics_file:
    written = json.load(metrics_file)
  assert written["step"] == 5 and written["num_samples"] == 20 and written["num_real"] == 30
  assert np.isfinite(written["fid"]) and written["fid"] > 0
  assert "inception_score" not in written and "'fc'" in written["unavailable"][
      "inception_score"]
  assert 0.0 <= written["conditional_accuracy"] <= 1.0
  assert len(written["conditional_accuracy_per_class"]) == 10
  assert 0.0 <= written["kmeans_accuracy"] <= 1.0 and 0.0 <= written["kmeans_nmi"] <= 1.0
  assert written["reconstruction_mse"] > 0 and written["num_nonfinite_samples"] == 0
  assert 0.0 <= written["reconstruction_judge_accuracy"] <= 1.0
  images = evaluate.real_eval_data(config)[0]
  assert written["mean_image_mse"] == pytest.approx(
      float(np.mean((images - images.mean(axis=0))**2)), rel=1e-5)
  assert written["judge_test_accuracy"] > 0.8
  for kind in ("sample", "reconstruction"):  # gray images: lattice, no colour grain
    assert all(written[f"{kind}_lattice_ratio_p{period}"] > 0 for period in (2, 4, 8))
    assert f"{kind}_colour_grain_ratio" not in written
  assert 0.0 <= written["code_alignment_accuracy"] <= 1.0
  assert np.isfinite(written["judge_fid"]) and written["judge_fid"] > 0
  assert os.path.isfile(written["fid_reference_stats"])
  assert results["fid"] == pytest.approx(written["fid"])

  assert Image.open(tmp_path / "samples_grid.png").size == (320, 4 * 32)  # num_grid_rows 4.
  assert Image.open(tmp_path / "reconstructions.png").size == (8 * 32, 32)  # 4 pairs.
  assert os.path.isfile(tmp_path / "tsne.png")
  assert set(writer.images[5]) == {"eval/samples_grid", "eval/reconstructions", "eval/tsne"}
  assert writer.images[5]["eval/samples_grid"].shape == (1, 128, 320, 1)
  assert {"eval/fid", "eval/conditional_accuracy", "eval/kmeans_nmi",
          "eval/reconstruction_mse"} <= set(writer.scalars[5]) and writer.flushed
  # The long parts report their progress.
  logged = [record.getMessage() for record in caplog.records]
  for line in ("Samples through Inception and the judge: 20 done in",
               "Inception features of the real split: 30 done in", "t-SNE of 60 points.",
               "t-SNE done in"):
    assert any(message.startswith(line) for message in logged), (line, logged)


def test_bad_evaluation_batch_norm_is_a_one_line_error():
  with pytest.raises(config_validation.ConfigError,
                     match="eval.decoder_batch_norm='mixed'.*pooled, per_input"):
    config_validation.validate_config(tiny_config(**{"eval.decoder_batch_norm": "mixed"}))


def test_evaluate_states_unsupervised_fixed_prior_without_inception_weights(
    trained_judge_dir, real_data_dir, tmp_path):
  config = _mnist_config(real_data_dir, **{
      "model.condition": "unsupervised", "model.prior": "fixed",
      "eval.num_samples": 20, "eval.batch_size": EVAL_BATCH,
      "eval.num_real_samples": 30, "eval.num_tsne_points": 20,
      "eval.inception_weights": str(tmp_path / "missing.npz")})
  states = lpaae_jax.create_states(config, jax.random.key(3))
  results = evaluate.evaluate_states(config, states, str(tmp_path / "eval"),
                                     judge_path=trained_judge_dir)
  # Missing weights are recorded, not fatal; the judge still reads the samples.
  assert "fid" not in results and "missing.npz" in results["unavailable"]["fid"]
  assert 0.1 <= results["cluster_accuracy"] <= 1.0  # Hungarian: never below 1/10 here.
  assert "conditional_accuracy" not in results and np.isfinite(results["judge_fid"])
  assert np.isfinite(results["kmeans_nmi"]) and np.isfinite(results["reconstruction_mse"])
  assert os.path.isfile(tmp_path / "eval" / "tsne.png")  # One panel: encoder codes.
  unavailable = {}  # Without a judge the metric is listed as unavailable, with the fix.
  assert evaluate._load_judge_for(config, states, None, unavailable) is None
  assert "python -m lpaae_jax.evaluation.judge" in unavailable["cluster_accuracy"]


# --- FID of real data ------------------------------------------------------------------------


def test_cpu_fast_paths_run_inception_in_small_batches():
  config = tiny_config(**{"eval.batch_size": 50})
  for fast_paths, expected in (("cpu", backend.CPU_INCEPTION_BATCH_SIZE), ("xla", 50)):
    config.fast_paths = fast_paths
    assert evaluate.inception_batch_size(config) == expected
  config.fast_paths, config.eval.batch_size = "cpu", 1
  assert evaluate.inception_batch_size(config) == 1


def test_fid_of_real_cifar10_halves_is_far_below_fid_against_noise(real_data_dir,
                                                                  inception_dir):
  config = tiny_config(data_dir=str(real_data_dir), download=False, dataset="cifar10",
                       **{"model.channels": 3})
  num = FID_IMAGES_PER_HALF
  images, _ = input_pipeline.load_split_arrays(config, "test", num=2 * num)
  # evaluate's batch size, so that the network compiles once in this module.
  inception_fn = inception.make_inception_fn(
      inception.load_inception_variables(str(inception_dir / WEIGHTS_NAME)),
      evaluate.inception_batch_size(config))
  noise = np.random.default_rng(0).uniform(-1, 1, (num, 32, 32, 3)).astype(np.float32)
  first, second, uniform = (evaluate.real_feature_stats(inception_fn, part)
                            for part in (images[:num], images[num:], noise))
  with warnings.catch_warnings():  # Few images: singular covariances.
    warnings.simplefilter("ignore")
    fid_halves = metrics.fid_from_stats(*first, *second)
    fid_noise = metrics.fid_from_stats(*first, *uniform)
  print(f"FID of {num}-image CIFAR-10 test halves: {fid_halves:.1f}; half vs uniform noise: "
        f"{fid_noise:.1f}")
  assert np.isfinite(fid_halves) and 0 < fid_halves < 0.5 * fid_noise
