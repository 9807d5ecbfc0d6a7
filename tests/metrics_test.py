"""Tests of lpaae_jax.evaluation.metrics against closed forms."""

import os
import warnings

import numpy as np
import pytest
from scipy import linalg

from lpaae_jax.evaluation import metrics


# --- Inception Score ---------------------------------------------------------------------------


def test_inception_score_of_uniform_predictions_is_one():
  mean, std = metrics.inception_score(np.zeros((100, 1008)), num_splits=10)
  assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("num_classes", [1, 10, 1008])
def test_inception_score_of_confident_evenly_spread_predictions_is_num_classes(num_classes):
  labels = np.arange(num_classes * 10) % num_classes  # Each split sees every class equally.
  logits = 100.0 * np.eye(1008)[labels]  # softmax(100 one-hot) is one-hot to ~1e-40.
  mean, std = metrics.inception_score(logits, num_splits=10)
  assert mean == pytest.approx(num_classes, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def _salimans_inception_score(logits, splits):
  # The reference code (improved-gan), on probabilities.
  preds = np.exp(logits - logits.max(1, keepdims=True))
  preds /= preds.sum(1, keepdims=True)
  scores = []
  for i in range(splits):
    part = preds[(i * preds.shape[0] // splits):((i + 1) * preds.shape[0] // splits), :]
    kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
    scores.append(np.exp(np.mean(np.sum(kl, 1))))
  return np.mean(scores), np.std(scores)


def test_inception_score_matches_reference_code_with_uneven_splits():
  logits = np.random.default_rng(0).normal(0.0, 3.0, (105, 1008))
  np.testing.assert_allclose(metrics.inception_score(logits, num_splits=10),
                             _salimans_inception_score(logits, 10), rtol=1e-10)


def test_inception_score_rejects_bad_inputs():
  with pytest.raises(ValueError, match="num_splits"):
    metrics.inception_score(np.zeros((5, 1008)), num_splits=10)
  with pytest.raises(ValueError, match="logits must be"):
    metrics.inception_score(np.zeros(1008), num_splits=1)


# --- FID ---------------------------------------------------------------------------------------


def _psd_sqrt(matrix):
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def _closed_form_fid(mu1, sigma1, mu2, sigma2):
  # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2): symmetric, so eigh only (no sqrtm).
  sqrt_sigma1 = _psd_sqrt(sigma1)
  middle = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
  tr_covmean = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0, None)))
  return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean


def test_fid_of_diagonal_gaussians():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
  expected = 1.0 + 4.0 + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))  # = 5 + 6.
  assert expected == pytest.approx(11.0)
  assert metrics.fid_from_stats(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)


def test_fid_of_non_diagonal_gaussians():
  sigma = np.array([[2.0, 1.0], [1.0, 2.0]])
  mu1, mu2 = np.array([1.0, 2.0]), np.array([-1.0, 2.0])
  # (S (4S))^1/2 = 2S, so FID = |dmu|^2 + Tr(S + 4S - 4S) = 4 + 4.
  assert metrics.fid_from_stats(mu1, sigma, mu2, 4 * sigma) == pytest.approx(8.0)
  assert metrics.fid_from_stats(mu1, sigma, mu2, sigma) == pytest.approx(4.0)
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
  sigma1, sigma2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  assert metrics.fid_from_stats(mu1, sigma1, mu2, sigma2) == pytest.approx(
      _closed_form_fid(mu1, sigma1, mu2, sigma2), rel=1e-8)


def test_fid_of_a_sample_with_itself_is_zero():
  features = np.random.default_rng(0).normal(size=(500, 64)).astype(np.float32)
  mu, sigma = metrics.feature_stats(features)
  np.testing.assert_allclose(mu, features.astype(np.float64).mean(0))
  np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False))
  assert metrics.fid_from_stats(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_trace_sqrt_product_matches_scipy_sqrtm():
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(40, 12)), rng.normal(size=(50, 12)) @ rng.normal(size=(12, 12))
  sigma1, sigma2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  expected = np.trace(linalg.sqrtm(sigma1 @ sigma2)).real  # pytorch-fid's formulation
  assert metrics.trace_sqrt_product(sigma1, sigma2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_singular_covariances_is_finite_and_matches_regularised_sqrtm():
  """Fewer samples than dimensions (rank-deficient covariances), as with small FID runs."""
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(5, 16)), rng.normal(size=(6, 16)) + 0.5
  (mu1, sigma1), (mu2, sigma2) = metrics.feature_stats(x), metrics.feature_stats(y)
  offset = 1e-9 * np.eye(16)
  covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset)).real
  expected = (np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2)
              - 2 * np.trace(covmean))
  fid = metrics.fid_from_stats(mu1, sigma1, mu2, sigma2)
  assert np.isfinite(fid) and fid == pytest.approx(expected, rel=1e-4)


def test_fid_rejects_mismatched_stats():
  with pytest.raises(ValueError, match="mismatched"):
    metrics.fid_from_stats(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_sqrtm_warns_nothing_on_well_conditioned_stats():
  features = np.random.default_rng(1).normal(size=(200, 8))
  mu, sigma = metrics.feature_stats(features)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # E.g. a scipy deprecation of sqrtm arguments.
    metrics.fid_from_stats(mu, sigma, mu + 1.0, 2.0 * sigma)


# --- Cached reference stats --------------------------------------------------------------------


def test_cached_reference_stats_are_computed_once_then_loaded(tmp_path):
  cache_path = str(tmp_path / "stats" / "cifar10_train.npz")
  calls = []

  def compute():
    calls.append(1)
    return np.arange(3.0), np.eye(3)

  mu, sigma = metrics.cached_reference_stats(cache_path, compute)
  assert len(calls) == 1 and os.listdir(tmp_path / "stats") == ["cifar10_train.npz"]
  cached_mu, cached_sigma = metrics.cached_reference_stats(cache_path, compute)
  assert len(calls) == 1
  np.testing.assert_array_equal(cached_mu, mu)
  np.testing.assert_array_equal(cached_sigma, sigma)


def test_cached_reference_stats_reject_a_foreign_npz(tmp_path):
  cache_path = str(tmp_path / "stats.npz")
  np.savez(cache_path, mean=np.zeros(3))
  with pytest.raises(ValueError, match="lacks 'mu'/'sigma'"):
    metrics.cached_reference_stats(cache_path, lambda: pytest.fail("must not recompute"))
