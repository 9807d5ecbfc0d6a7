"""Evaluation of trained states: every metric that applies to the run's setting, plus figures.

  python -m lpaae_jax.evaluate --workdir=runs/cifar10 [--config=configs/cifar10.py] \
      [--judge=DIR] [--num_samples=N]

restores the workdir's latest checkpoint and writes `WORKDIR/eval/step_N/metrics.json` and
the PNGs (N: the checkpoint's step), copies them to `WORKDIR/eval/` (the latest evaluation),
and writes TensorBoard summaries. Without `--config` the run's stored config
(`WORKDIR/config.json`, written by training) is used, and `--config.<field>=...` overrides
it; with `--config` (the training config, with its variant) overrides apply as usual, and a
config of another dataset or model is an error.

`evaluate_states(config, states, out_dir, ...)` computes, in eval mode:

  fid                     generated samples vs the real `config.eval_split` (pool3 features
                          of the FID InceptionV3); reference stats cached as .npz
  inception_score(_std)   when the Inception weights hold the 1008-way `fc` (the shared
                          *_nofc weights do not: recorded under "unavailable" with the reason)
  conditional_accuracy    supervised: judge(dec(z_c(z, s))) == s      } need a judge
  cluster_accuracy        unsupervised: the same up to a Hungarian     } (judge_path or
                          matching of s to classes                     } config.eval.judge_path)
  judge_fid               Frechet distance in the judge's hidden-layer } (any setting)
                          features (cheap; FID-like for MNIST on CPU)  }
  kmeans_accuracy, _nmi   k-means (k = num_classes) of encoder codes of real eval images
  code_alignment_accuracy supervised: the class of a real image read off the s of its 10
                          nearest prior codes (t-SNE's overlay as a number; chance 0.1)
  reconstruction_mse      mean squared pixel error of dec(enc(x)) on real eval images ([-1, 1])
  mean_image_mse          the same error for predicting the eval split's mean image (the
                          baseline a reconstruction must beat)
  reconstruction_judge_accuracy   judge(dec(enc(x))) == label of x: the reconstructions
                          keep the class (needs a judge)
  sample_lattice_ratio_p2/_p4/_p8, sample_colour_grain_ratio   the decoder's artefacts in
                          the first 1000 samples, as ratios to the first 1000 real eval
                          images (`evaluation.artifacts`; ~1 for real images)
  reconstruction_lattice_ratio_p2/..., reconstruction_colour_grain_ratio   the same for
                          the reconstructions of those real images

and writes `out_dir/metrics.json` (with "provenance": the config, git commit, package
versions and devices; see lpaae_jax.provenance), `samples_grid.png` (Figure 3),
`reconstructions.png` and `tsne.png` (Figure 4), and, given a clu MetricWriter, the scalars
and images under `eval/`. `evaluate_run(config, states, workdir, step)` does that in
`workdir/eval/step_<step>/` and copies the files to `workdir/eval/`.
Samples use s = 0, 1, ..., 9, 0, ... (balanced) and noise fixed by config.seed, so the
numbers of successive evaluations of one run are comparable.

Optional config fields (read with defaults when absent):
  config.eval.judge_path         None: no judge metrics
  config.eval.num_real_samples   None: the whole eval split (FID reference, k-means, MSE)
  config.eval.num_tsne_points    1000 real codes (+ as many CG samples)
  config.eval.recalibrate_bn_batches   0: evaluate with the training's running BatchNorm
                                 averages; n > 0: first replace them by the final networks'
                                 statistics over the run's first n training batches
                                 (`lpaae_jax.recalibrate_batch_norm`)
  config.eval.decoder_batch_norm "pooled": one decoder for samples and reconstructions;
                                 "per_input": each with its input's statistics
                                 (`inference_states`)
  config.eval.use_inception      True; False skips FID/IS (InceptionV3 at 299x299 is slow on
                                 a CPU: the judge's FID then stands in)
  config.eval.stats_cache_dir    None: out_dir (evaluate_run: WORKDIR/eval, for every step)
"""

import functools
import json
import os
import shutil
import sys
import time
from typing import Any, NamedTuple, Optional

import jax
import ml_collections
import numpy as np
from absl import app
from absl import flags
from absl import logging
from clu import metric_writers
from ml_collections import config_flags

import lpaae_jax
from lpaae_jax import backend
from lpaae_jax import checkpointing
from lpaae_jax import cli
from lpaae_jax import errors
from lpaae_jax import file_utils
from lpaae_jax import forward
from lpaae_jax import input_pipeline
from lpaae_jax import provenance
from lpaae_jax import stored_config
from lpaae_jax.evaluation import (artifacts, disentanglement, figures, inception, judge,
                                  metrics)
from lpaae_jax.states import States

METRICS_FILE = "metrics.json"
EVAL_DIR = "eval"  # in a workdir: step_N/ per evaluated step, and the latest one's copies
FIGURE_FILES = {"samples_grid": "samples_grid.png", "reconstructions": "reconstructions.png",
                "tsne": "tsne.png"}
DEFAULT_NUM_TSNE_POINTS = 1000
_EVAL_SEED_OFFSET = 0x5eed  # Eval noise independent of the training noise of the same seed.


def _eval_field(config: ml_collections.ConfigDict, name: str, default=None):
  value = config.eval.get(name, default)
  return default if value is None else value


def eval_keys(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Fixed keys of the evaluation (same at every eval of a run): samples, grid, t-SNE,
  and the prior inputs of the BatchNorm recalibration."""
  base = jax.random.fold_in(jax.random.key(int(config.seed)), _EVAL_SEED_OFFSET)
  keys = dict(zip(("samples", "grid", "tsne"), jax.random.split(base, 3)))
  keys["recalibrate"] = jax.random.fold_in(base, 1)
  return keys


def recalibration_batches(config: ml_collections.ConfigDict) -> list[dict[str, np.ndarray]]:
  """The first config.eval.recalibrate_bn_batches training batches of the run (its seed),
  for `lpaae_jax.recalibrate_batch_norm`; [] when 0."""
  num = int(_eval_field(config, "recalibrate_bn_batches", 0))
  if not num:
    return []
  # One process's view: every host recalibrates on the same global batches.
  return list(input_pipeline.create_train_iterator(config, start_step=0, end_step=num,
                                                   process_index=0, process_count=1))


def recalibrated(config: ml_collections.ConfigDict, states: States,
                 batches: Optional[list] = None, decoder_inputs: str = "both") -> States:
  """`states` with precise BatchNorm statistics (config.eval.recalibrate_bn_batches > 0),
  else unchanged; `batches` (from `recalibration_batches`) saves reloading the data;
  `decoder_inputs` as `lpaae_jax.recalibrate_batch_norm`'s."""
  batches = recalibration_batches(config) if batches is None else batches
  if not batches:
    return states
  return lpaae_jax.recalibrate_batch_norm(states, batches, eval_keys(config)["recalibrate"],
                                          decoder_inputs=decoder_inputs)


class InferenceStates(NamedTuple):
  """The states evaluation samples with and the states it reconstructs with."""
  sampling: States
  reconstructing: States


def inference_states(config: ml_collections.ConfigDict, states: States,
                     batches: Optional[list] = None) -> InferenceStates:
  """`recalibrated` states for sampling and for reconstructing. config.eval.
  decoder_batch_norm "pooled": one set, the decoder's statistics averaged over its two
  training inputs; "per_input": the decoder's statistics over prior codes for sampling and
  over encoder codes for reconstructing, as training normalises each batch by its own."""
  batches = recalibration_batches(config) if batches is None else batches
  if _eval_field(config, "decoder_batch_norm", "pooled") == "pooled" or not batches:
    pooled = recalibrated(config, states, batches)
    return InferenceStates(pooled, pooled)
  return InferenceStates(recalibrated(config, states, batches, decoder_inputs="prior"),
                         recalibrated(config, states, batches, decoder_inputs="codes"))


def restore_for_inference(workdir: str, config: Optional[ml_collections.ConfigDict] = None
                          ) -> tuple[States, ml_collections.ConfigDict]:
  """(states, config) of the workdir's latest checkpoint, ready for `lpaae_jax.sample`,
  `encode` and `reconstruct` as the evaluation uses them: the checkpoint holds training's
  running BatchNorm averages, which lag the final networks (`recalibrated` replaces them).
  config None: the run's stored config. (With config.eval.decoder_batch_norm="per_input" these
  are the reconstructing states; `inference_states` gives both.)"""
  config = provenance.load_config(workdir) if config is None else config
  states, _ = checkpointing.restore_latest(config, workdir)
  return inference_states(config, states).reconstructing, config


# --- Progress ------------------------------------------------------------------------------


class Progress:
  """Logs `done of total` with the elapsed time and an ETA, at most every `every_s` seconds
  and when done: an evaluation takes minutes on an accelerator (50k samples through
  Inception) and far longer on a CPU."""

  def __init__(self, what: str, total: int, every_s: float = 30.0, clock=time.perf_counter):
    self.what, self.total, self.every_s, self.clock = what, total, every_s, clock
    self.start = self.last = clock()
    logging.info("%s: %d to do.", what, total)

  def update(self, done: int) -> None:
    now = self.clock()
    if done < self.total and now - self.last < self.every_s:
      return
    self.last = now
    elapsed = now - self.start
    if done >= self.total:
      logging.info("%s: %d done in %.0f s.", self.what, done, elapsed)
    else:
      eta = elapsed / max(done, 1) * (self.total - done)
      logging.info("%s: %d of %d (%.0f%%), %.0f s, ETA %.0f s.", self.what, done, self.total,
                   100.0 * done / self.total, elapsed, eta)


# --- Batched model calls ---------------------------------------------------------------------


def batched_apply(fn, states: States, images: np.ndarray, batch_size: int) -> np.ndarray:
  """fn(states, batch) over images in fixed-size batches (the last zero-padded: one compile)."""
  outputs = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    num_real = len(batch)
    if num_real < batch_size:
      batch = np.concatenate([batch, np.zeros((batch_size - num_real, *batch.shape[1:]),
                                              batch.dtype)])
    outputs.append(np.asarray(fn(states, batch))[:num_real])
  return np.concatenate(outputs)


def sample_batches(states: States, key, num: int, batch_size: int):
  """Yields (images in [-1, 1], s or None) batches of `num` prior samples, s balanced.

  Every batch is generated at `batch_size` (one compile) and the last one truncated.
  """
  spec = states.spec
  for index, start in enumerate(range(0, num, batch_size)):
    noise = forward.prior_noise(spec, jax.random.fold_in(key, index), batch_size)
    s = (disentanglement.balanced_conditions(batch_size, spec.num_classes, start)
         if spec.conditional else None)
    images = np.asarray(lpaae_jax.decode_noise(states, noise, s))
    count = min(batch_size, num - start)
    yield images[:count], (None if s is None else s[:count])


_prior_codes = jax.jit(forward.prior_codes_eval)


def prior_code_samples(states: States, key, num: int):
  """(z_c (num, code_dim), s or None) from the code generator, s balanced."""
  spec = states.spec
  s = disentanglement.balanced_conditions(num, spec.num_classes) if spec.conditional else None
  return np.asarray(_prior_codes(states, forward.prior_noise(spec, key, num), s)), s


# --- FID / IS ----------------------------------------------------------------------------------


class FeatureMoments:
  """Running mean and covariance of features: FID of many samples without keeping them."""

  def __init__(self):
    self.count = 0
    self.total = None
    self.outer = None

  def update(self, features) -> None:
    features = np.asarray(features, np.float64)
    if self.total is None:
      self.total = np.zeros(features.shape[1])
      self.outer = np.zeros((features.shape[1],) * 2)
    self.count += len(features)
    self.total += features.sum(axis=0)
    self.outer += features.T @ features

  def stats(self) -> tuple[np.ndarray, np.ndarray]:
    """(mean, unbiased covariance), as metrics.feature_stats."""
    if self.count < 2:
      raise ValueError(f"FID needs at least 2 samples; got {self.count}.")
    mean = self.total / self.count
    covariance = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
    return mean, covariance


@functools.lru_cache(maxsize=2)
def _inception_fn_cached(weights_path: str, batch_size: int, compiler_options=()):
  variables = inception.load_inception_variables(weights_path)
  return (inception.make_inception_fn(variables, batch_size, compiler_options=compiler_options),
          "fc" in variables["params"])


def inception_batch_size(config: ml_collections.ConfigDict) -> int:
  """Images per InceptionV3 call: eval.batch_size, capped by the backend
  (`Backend.inception_batch_size`). Features do not depend on it (the network is evaluated
  image by image: running BatchNorm averages)."""
  return backend.from_config(config).inception_batch_size(int(config.eval.batch_size))


def load_inception_fn(config: ml_collections.ConfigDict):
  """-> (fn(images) -> {"pool3", "logits" | None}, has_logits, weights path); cached."""
  weights_path = os.path.abspath(inception.resolve_inception_weights(
      config.eval.get("inception_weights")))
  fn, has_logits = _inception_fn_cached(
      weights_path, inception_batch_size(config),
      backend.from_config(config).compiler_options())
  return fn, has_logits, weights_path


def reference_stats_path(config: ml_collections.ConfigDict, cache_dir: str, num_real: int,
                         weights_path: str) -> str:
  """Cache file of the real split's pool3 stats: one per dataset, split, count and weights."""
  weights = os.path.splitext(os.path.basename(weights_path))[0]
  return os.path.join(cache_dir, f"fid_reference_{config.dataset}_{config.eval_split}_"
                                 f"{num_real}_{weights}.npz")


def real_feature_stats(inception_fn, images: np.ndarray,
                       chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
  """pool3 (mean, covariance) of images in [-1, 1], fed `chunk` at a time (progress)."""
  progress = Progress("Inception features of the real split", len(images))
  pool3 = []
  for start in range(0, len(images), chunk):
    pool3.append(inception_fn(figures.to_uint8(images[start:start + chunk]))["pool3"])
    progress.update(start + len(pool3[-1]))
  return metrics.feature_stats(np.concatenate(pool3))


# --- Real data -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _real_arrays_cached(config_json: str, split: str, num: Optional[int]):
  config = ml_collections.ConfigDict(json.loads(config_json))
  return input_pipeline.load_split_arrays(config, split, num=num)


def real_eval_data(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """The first config.eval.num_real_samples (all when None) eval-split images and labels.

  Cached across calls (periodic evaluation in training reloads nothing).
  """
  data_fields = {"dataset": config.dataset,
                 "data_dir": input_pipeline.resolve_data_dir(config.get("data_dir")),
                 "download": config.get("download", False),
                 "model": {"channels": config.model.channels,
                           "image_size": config.model.image_size}}
  num = config.eval.get("num_real_samples")
  return _real_arrays_cached(json.dumps(data_fields, sort_keys=True), config.eval_split,
                             None if num is None else int(num))


# --- Output --------------------------------------------------------------------------------


def scalar_metrics(results: dict) -> dict[str, float]:
  """The finite numeric top-level entries (the metrics), as TensorBoard scalars."""
  skip = {"step", "num_samples", "num_real"}
  return {key: float(value) for key, value in results.items()
          if key not in skip and isinstance(value, (int, float, np.number))
          and not isinstance(value, bool) and np.isfinite(value)}


# --- Evaluation ----------------------------------------------------------------------------


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
  return {prefix + key: value for key, value in values.items()}


def _sample_metrics(config, states: States, num_samples: int, judge_model, unavailable: dict,
                    cache_dir: str, real_images: np.ndarray) -> dict[str, Any]:
  """FID / IS / judge metrics of `num_samples` prior samples, streamed batch by batch, and
  the artefact ratios of the first artifacts.NUM_IMAGES (all that is drawn when neither
  Inception nor a judge reads the samples)."""
  results = {}
  inception_fn, has_logits = None, False
  if not _eval_field(config, "use_inception", True):
    unavailable["fid"] = unavailable["inception_score"] = (
        "not computed: config.eval.use_inception=False")
  else:
    try:
      inception_fn, has_logits, weights_path = load_inception_fn(config)
    except (FileNotFoundError, ValueError) as error:
      reason = errors.first_line(error)
      unavailable["fid"] = unavailable["inception_score"] = reason
      logging.warning("FID and Inception Score unavailable: %s", reason)
  if inception_fn is not None and not has_logits:
    unavailable["inception_score"] = (
        f"the Inception weights {weights_path} have no 'fc' layer (pool3 only), so no "
        "logits: convert the full pytorch-fid release (pt_inception-2015-12-05-6726825d.pth) "
        "with python -m lpaae_jax.evaluation.convert_inception")
  moments, judge_moments = FeatureMoments(), FeatureMoments()
  first_samples = []
  logits, judge_labels, conditions = [], [], []
  num_nonfinite = done = 0
  batch_size = int(config.eval.batch_size)
  readers = [name for name, used in (("Inception", inception_fn), ("the judge", judge_model))
             if used is not None]
  if not readers:
    num_samples = min(num_samples, artifacts.NUM_IMAGES)
  progress = Progress("Samples through " + (" and ".join(readers) or "the artefact ratios"),
                      num_samples)
  for images, s in sample_batches(states, eval_keys(config)["samples"], num_samples,
                                  batch_size):
    if done < artifacts.NUM_IMAGES:
      first_samples.append(images[:artifacts.NUM_IMAGES - done])
    done += len(images)
    num_nonfinite += int(np.sum(~np.isfinite(images).reshape(len(images), -1).all(axis=1)))
    if inception_fn is not None:
      outputs = inception_fn(figures.to_uint8(images))
      moments.update(outputs["pool3"])
      if has_logits:
        logits.append(outputs["logits"])
    if judge_model is not None:
      judge_out = judge.judge_outputs(judge_model, images, batch_size)
      judge_moments.update(judge_out["features"])
      judge_labels.append(np.argmax(judge_out["logits"], axis=-1))
      conditions.append(s)
    progress.update(done)
  results["num_nonfinite_samples"] = num_nonfinite
  if not num_nonfinite:
    results.update(_prefixed("sample_", artifacts.artifact_ratios(
        np.concatenate(first_samples), real_images[:artifacts.NUM_IMAGES])))

  if inception_fn is not None and num_nonfinite:
    unavailable["fid"] = unavailable["inception_score"] = (
        f"{num_nonfinite} of {num_samples} samples contain NaN/inf (the model diverged)")
  elif inception_fn is not None:
    num_real = len(real_images)
    cache_path = reference_stats_path(config, cache_dir, num_real, weights_path)
    reference_mu, reference_sigma = metrics.cached_reference_stats(
        cache_path, lambda: real_feature_stats(inception_fn, real_images))
    results["fid"] = metrics.fid_from_stats(*moments.stats(), reference_mu, reference_sigma)
    results["fid_reference_stats"] = cache_path
    if has_logits:
      num_splits = max(1, min(int(config.eval.num_splits), num_samples))
      results["inception_score"], results["inception_score_std"] = metrics.inception_score(
          np.concatenate(logits), num_splits)

  if judge_model is not None and num_nonfinite:
    unavailable["judge_fid"] = (
        f"{num_nonfinite} of {num_samples} samples contain NaN/inf (the model diverged)")
  elif judge_model is not None:
    real_features = judge.judge_outputs(judge_model, real_images, batch_size)["features"]
    results["judge_fid"] = metrics.fid_from_stats(*judge_moments.stats(),
                                                  *metrics.feature_stats(real_features))
  if judge_model is not None and states.spec.conditional:
    judge_labels, conditions = np.concatenate(judge_labels), np.concatenate(conditions)
    num_classes = states.spec.num_classes
    if states.spec.condition == "supervised":
      results["conditional_accuracy"] = disentanglement.conditional_accuracy(judge_labels,
                                                                             conditions)
      results["conditional_accuracy_per_class"] = disentanglement.per_class_accuracy(
          judge_labels, conditions, num_classes).tolist()
    else:
      results["cluster_accuracy"] = disentanglement.cluster_accuracy(judge_labels, conditions,
                                                                     num_classes)
  return results


def _load_judge_for(config, states: States, judge_path: Optional[str], unavailable: dict):
  if not judge_path:
    metric = {"supervised": "conditional_accuracy", "unsupervised": "cluster_accuracy"}.get(
        states.spec.condition)
    for name in ([metric] if metric else []) + ["judge_fid"]:
      unavailable[name] = (
          "no judge classifier given (judge_path or config.eval.judge_path); make one with: "
          f"python -m lpaae_jax.evaluation.judge --config=<dataset config> --out=<dir>")
    return None
  return judge.load_judge(judge_path, dataset=config.dataset)


def evaluate_states(config: ml_collections.ConfigDict, states: States, out_dir: str, *,
                    judge_path: Optional[str] = None, num_samples: Optional[int] = None,
                    writer=None, step: int = 0,
                    stats_cache_dir: Optional[str] = None) -> dict[str, Any]:
  """Every metric that applies to `states` (see the module docstring); writes out_dir.

  judge_path: a judge made by `python -m lpaae_jax.evaluation.judge` (default
  config.eval.judge_path); a bad one raises judge.JudgeUnavailableError. num_samples:
  default config.eval.num_samples. writer: a clu MetricWriter (scalars and images at `step`).
  stats_cache_dir: where the real split's FID stats are cached (default
  config.eval.stats_cache_dir, then out_dir). Missing Inception weights do not fail the
  evaluation: FID/IS are then listed under "unavailable" with the reason.
  Returns the dict written to out_dir/metrics.json.
  """
  start_time = time.time()
  spec = states.spec
  num_samples = int(num_samples or config.eval.num_samples)
  judge_path = judge_path or _eval_field(config, "judge_path")
  cache_dir = stats_cache_dir or _eval_field(config, "stats_cache_dir") or out_dir
  os.makedirs(out_dir, exist_ok=True)
  batch_size = int(config.eval.batch_size)
  unavailable: dict[str, str] = {}

  judge_model = _load_judge_for(config, states, judge_path, unavailable)  # Fail fast.
  real_images, real_labels = real_eval_data(config)
  states, reconstructing = inference_states(config, states)
  results: dict[str, Any] = {
      "step": int(step), "dataset": config.dataset, "condition": spec.condition,
      "prior": spec.prior, "num_samples": num_samples, "num_real": int(len(real_labels)),
  }
  if judge_model is not None:
    results["judge"] = judge_model.path
    results["judge_test_accuracy"] = judge_model.info.get("test_accuracy")

  results.update(_sample_metrics(config, states, num_samples, judge_model, unavailable,
                                 cache_dir, real_images))

  codes = batched_apply(lambda st, x: lpaae_jax.encode(st, x), states, real_images, batch_size)
  results.update(disentanglement.kmeans_code_scores(codes, real_labels, spec.num_classes,
                                                    seed=int(config.seed)))
  reconstructions = batched_apply(lambda st, x: lpaae_jax.reconstruct(st, x), reconstructing,
                                  real_images, batch_size)
  results["reconstruction_mse"] = float(np.mean(np.square(reconstructions - real_images)))
  results["mean_image_mse"] = float(np.mean(np.square(real_images - real_images.mean(axis=0))))
  results.update(_prefixed("reconstruction_", artifacts.artifact_ratios(
      reconstructions[:artifacts.NUM_IMAGES], real_images[:artifacts.NUM_IMAGES])))
  if judge_model is not None:
    results["reconstruction_judge_accuracy"] = float(np.mean(
        judge.judge_predict(judge_model, reconstructions) == real_labels))

  keys = eval_keys(config)
  paths = {name: os.path.join(out_dir, file) for name, file in FIGURE_FILES.items()}
  images = {
      "samples_grid": figures.figure3_grid(states, keys["grid"], int(config.num_grid_rows),
                                           path=paths["samples_grid"]),
      "reconstructions": figures.reconstruction_pairs(
          reconstructing, real_images[:int(config.num_reconstructions)],
          path=paths["reconstructions"]),
  }
  num_tsne = min(int(_eval_field(config, "num_tsne_points", DEFAULT_NUM_TSNE_POINTS)),
                 len(real_images))
  if spec.condition == "supervised":  # either prior: its codes are [z'; one-hot s]
    results["code_alignment_accuracy"] = disentanglement.code_alignment_accuracy(
        codes[:num_tsne], real_labels[:num_tsne],
        *prior_code_samples(states, keys["tsne"], num_tsne))
  prior_codes, prior_s = (prior_code_samples(states, keys["tsne"], num_tsne)
                          if spec.learned_prior else (None, None))
  tsne_start = time.perf_counter()
  logging.info("t-SNE of %d points.", num_tsne * (1 if prior_codes is None else 2))
  images["tsne"] = figures.tsne_figure(
      codes[:num_tsne], real_labels[:num_tsne], prior_codes, prior_s, path=paths["tsne"],
      seed=int(config.seed), title=f"{config.dataset}, {spec.condition}, {spec.prior} prior, "
                                   f"step {step}")
  logging.info("t-SNE done in %.0f s.", time.perf_counter() - tsne_start)
  results["figures"] = {name: os.path.basename(path) for name, path in paths.items()}
  results["unavailable"] = unavailable
  results["eval_seconds"] = round(time.time() - start_time, 1)
  results["provenance"] = provenance.record(config)
  file_utils.write_json(os.path.join(out_dir, METRICS_FILE), results)

  if writer is not None:
    writer.write_scalars(step, {f"eval/{key}": value
                                for key, value in scalar_metrics(results).items()})
    writer.write_images(step, {f"eval/{name}": image[None] for name, image in images.items()})
    writer.flush()
  logging.info("eval at step %d: %s", step, scalar_metrics(results))
  return results


FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Only when run as a command: importing this module must not claim global flag names
  # (`--config` is also the benchmark's and the trainer's).
  flags.DEFINE_string("workdir", None, "Training workdir whose latest checkpoint is evaluated.")
  flags.DEFINE_string("judge", None, "Judge classifier file (see lpaae_jax.evaluation.judge); "
                      "enables conditional / cluster accuracy.")
  flags.DEFINE_integer("num_samples", None,
                       "Generated samples (default config.eval.num_samples).",
                       lower_bound=2)  # FID needs a covariance
  config_flags.DEFINE_config_file("config", None, "The run's training config (default: the "
                                  "one training stored in WORKDIR/config.json, which "
                                  "--config.<field> overrides also apply to).",
                                  lock_config=True)
  flags.mark_flags_as_required(["workdir"])


def eval_root(workdir: str) -> str:
  return os.path.join(workdir, EVAL_DIR)


def step_dir(workdir: str, step: int) -> str:
  """Where the evaluation of the checkpoint of `step` goes: WORKDIR/eval/step_<step>/."""
  return os.path.join(eval_root(workdir), f"step_{int(step)}")


def publish_latest(source_dir: str, target_dir: str) -> None:
  """Copies an evaluation's figures, then its metrics.json (last: a reader that finds it
  finds the figures), to target_dir, each file replaced atomically."""
  for name in list(FIGURE_FILES.values()) + [METRICS_FILE]:
    source = os.path.join(source_dir, name)
    if os.path.isfile(source):
      with open(source, "rb") as source_file:
        file_utils.write_atomically(os.path.join(target_dir, name),
                                    lambda f, s=source_file: shutil.copyfileobj(s, f))


def evaluate_run(config: ml_collections.ConfigDict, states: States, workdir: str, step: int,
                 **kwargs) -> dict[str, Any]:
  """evaluate_states into WORKDIR/eval/step_<step>/ (reference stats cached in
  WORKDIR/eval/ unless config.eval.stats_cache_dir says otherwise), then its files copied
  to WORKDIR/eval/ as the latest evaluation. kwargs: those of evaluate_states."""
  kwargs.setdefault("stats_cache_dir", _eval_field(config, "stats_cache_dir")
                    or eval_root(workdir))
  out_dir = step_dir(workdir, step)
  results = evaluate_states(config, states, out_dir, step=step, **kwargs)
  if jax.process_index() == 0:
    publish_latest(out_dir, eval_root(workdir))
  return results


def evaluate_workdir(config: Optional[ml_collections.ConfigDict], workdir: str, *,
                     judge_path: Optional[str] = None,
                     num_samples: Optional[int] = None) -> dict[str, Any]:
  """Restores the workdir's latest checkpoint (step N) and evaluates it into
  `workdir/eval/step_N/` (metrics.json, PNGs; copied to `workdir/eval/`) and the workdir's
  TensorBoard events. config None: the run's stored config (`WORKDIR/config.json`)."""
  file_utils.check_local_workdir(workdir)
  if config is None:
    config = provenance.load_config(workdir)
    logging.info("Evaluating with the run's stored config %s.", provenance.config_path(workdir))
  states, step = checkpointing.restore_latest(config, workdir)
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  try:
    return evaluate_run(config, states, workdir, step, judge_path=judge_path,
                        num_samples=num_samples, writer=writer)
  finally:
    writer.close()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  results = evaluate_workdir(FLAGS.config, FLAGS.workdir, judge_path=FLAGS.judge,
                             num_samples=FLAGS.num_samples)
  print(json.dumps(scalar_metrics(results), indent=2, sort_keys=True))


def with_stored_config(argv: list[str]) -> list[str]:
  """`--config.<field>=...` overrides without `--config` override the run's stored config:
  argv with `--config=<lpaae_jax/stored_config.py>:WORKDIR` added."""
  config_file, overrides = cli.flag_and_subfields(argv, "config")
  workdir, _ = cli.flag_and_subfields(argv, "workdir")
  if config_file is not None or not overrides or workdir is None:
    return argv
  return [argv[0], f"--config={stored_config.__file__}:{workdir}", *argv[1:]]


def run() -> None:
  """The `lpaae-evaluate` command (python -m lpaae_jax.evaluate)."""
  _define_flags()
  cli.run(main, argv=with_stored_config(sys.argv))


if __name__ == "__main__":
  run()
