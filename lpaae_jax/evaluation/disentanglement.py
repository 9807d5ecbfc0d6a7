"""Disentanglement metrics: how well s (or the codes) capture the class.

  conditional_accuracy(judge_labels, s)          supervised: judge(dec(z_c(z, s))) == s
  cluster_accuracy(judge_labels, s)              unsupervised: same, up to the best
                                                 one-to-one relabelling of s (Hungarian)
  hungarian_match(predicted, target)             -> (accuracy, {predicted: target})
  kmeans_code_scores(codes, labels)              k-means (k=10) of encoder codes of real
                                                 images vs true labels: accuracy and NMI
  code_alignment_accuracy(codes, labels, prior_codes, prior_s)   supervised: the class of
                                                 each real image's code read off its nearest
                                                 prior samples' s (Figure 4's overlay)
  balanced_conditions(num, num_classes)          s = 0, 1, ..., 9, 0, 1, ...: equal counts

All numpy/scipy/scikit-learn on host arrays; generating the samples and running the judge
happen in `lpaae_jax.evaluate`.
"""

from typing import Optional

import numpy as np
from scipy import optimize
from sklearn import cluster, metrics, neighbors


def _labels(values, name: str) -> np.ndarray:
  values = np.asarray(values)
  if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer) or (
      values.size and values.min() < 0):
    raise ValueError(f"{name} must be a 1-D array of non-negative integer labels; got shape "
                     f"{values.shape}, dtype {values.dtype}.")
  return values


def confusion_counts(predicted, target, num_classes: Optional[int] = None) -> np.ndarray:
  """counts[i, j] = #{n : predicted[n] == i and target[n] == j}."""
  predicted, target = _labels(predicted, "predicted"), _labels(target, "target")
  if predicted.shape != target.shape or not predicted.size:
    raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be equal, "
                     "non-empty label vectors.")
  size = max(int(predicted.max()), int(target.max())) + 1
  size = max(size, num_classes or 0)
  counts = np.zeros((size, size), np.int64)
  np.add.at(counts, (predicted, target), 1)
  return counts


def hungarian_match(predicted, target,
                    num_classes: Optional[int] = None) -> tuple[float, dict[int, int]]:
  """Accuracy under the one-to-one relabelling of `predicted` that agrees most with `target`.

  The relabelling maximises the matched counts of the confusion matrix (Hungarian
  algorithm, scipy's linear_sum_assignment). Returns (accuracy, {predicted: target}).
  """
  counts = confusion_counts(predicted, target, num_classes)
  rows, cols = optimize.linear_sum_assignment(counts, maximize=True)
  accuracy = float(counts[rows, cols].sum() / counts.sum())
  return accuracy, {int(row): int(col) for row, col in zip(rows, cols)}


def cluster_accuracy(judge_labels, s, num_classes: Optional[int] = None) -> float:
  """Unsupervised setting: judge labels of samples vs their s, s matched to classes."""
  return hungarian_match(s, judge_labels, num_classes)[0]


def conditional_accuracy(judge_labels, s) -> float:
  """Supervised setting: the fraction of samples generated for s that the judge calls s."""
  judge_labels, s = _labels(judge_labels, "judge_labels"), _labels(s, "s")
  if judge_labels.shape != s.shape or not s.size:
    raise ValueError(f"judge_labels {judge_labels.shape} and s {s.shape} must be equal, "
                     "non-empty label vectors.")
  return float(np.mean(judge_labels == s))


def per_class_accuracy(judge_labels, s, num_classes: int) -> np.ndarray:
  """Conditional accuracy of each s (NaN for an s with no sample)."""
  judge_labels, s = _labels(judge_labels, "judge_labels"), _labels(s, "s")
  hits = np.bincount(s, weights=(judge_labels == s), minlength=num_classes)
  totals = np.bincount(s, minlength=num_classes)
  with np.errstate(invalid="ignore", divide="ignore"):
    return hits / totals


def kmeans_code_scores(codes, labels, num_clusters: int = 10, seed: int = 0,
                       n_init: int = 10) -> dict[str, float]:
  """k-means of codes (N, D) vs true labels -> {"kmeans_accuracy", "kmeans_nmi"}.

  Accuracy matches clusters to labels one-to-one (Hungarian); NMI is scikit-learn's
  (arithmetic normalisation).
  """
  codes = np.asarray(codes, np.float64)
  labels = _labels(labels, "labels")
  if codes.ndim != 2 or len(codes) != len(labels) or len(codes) < num_clusters:
    raise ValueError(f"codes must be (N >= {num_clusters}, D) with one label each; got codes "
                     f"{codes.shape}, labels {labels.shape}.")
  if not np.isfinite(codes).all():
    raise ValueError("codes contain NaN or inf: the encoder diverged.")
  assignments = cluster.KMeans(n_clusters=num_clusters, n_init=n_init,
                               random_state=seed).fit_predict(codes)
  return {
      "kmeans_accuracy": hungarian_match(assignments, labels, num_clusters)[0],
      "kmeans_nmi": float(metrics.normalized_mutual_info_score(labels, assignments)),
  }


def code_alignment_accuracy(codes, labels, prior_codes, prior_s,
                            num_neighbours: int = 10) -> float:
  """How often the majority s of a real image's `num_neighbours` nearest prior samples
  (Euclidean, in code space) is the image's class: 1 when the encoder puts each class's
  codes where the prior puts that s, chance (1 / classes) when the two do not line up."""
  codes, prior_codes = np.asarray(codes, np.float64), np.asarray(prior_codes, np.float64)
  labels, prior_s = _labels(labels, "labels"), _labels(prior_s, "prior_s")
  if (codes.ndim != 2 or prior_codes.ndim != 2 or codes.shape[1] != prior_codes.shape[1]
      or len(codes) != len(labels) or len(prior_codes) != len(prior_s)
      or len(prior_codes) < num_neighbours):
    raise ValueError(f"codes {codes.shape} / labels {labels.shape} and prior codes "
                     f"{prior_codes.shape} / s {prior_s.shape} must pair up, with at least "
                     f"{num_neighbours} prior codes of the same dimension.")
  classifier = neighbors.KNeighborsClassifier(num_neighbours).fit(prior_codes, prior_s)
  return float(np.mean(classifier.predict(codes) == labels))


def balanced_conditions(num: int, num_classes: int, start: int = 0) -> np.ndarray:
  """s of samples start, ..., start + num - 1: cycles through the classes (equal counts)."""
  return (np.arange(start, start + num) % num_classes).astype(np.int32)
