r"""The paper's Inception-Score table: six CIFAR-10 runs, learned vs. fixed prior (DESIGN §5).

  python -m experiments.paper_table.run --workdir=runs/paper_table \
      [--config=configs/cifar10.py] [--config.num_train_steps=...] [--judge=judges/cifar10] \
      [--results=experiments/paper_table/results] [--runs=supervised_learned,supervised_fixed]
      [--report_only]

Trains and evaluates {image generation (condition none), supervised, unsupervised} x
{learned, fixed} prior with the given config (paper scale by default: width 64, batch 64,
100k iterations, 50k samples for IS/FID), one run after the other, each in
`--workdir/<setting>_<prior>` (`--runs` picks some of them; the table lists the others as
not run). It is meant to run unattended: an interrupted command
(preemption, SIGTERM, a closed Colab) resumes from the checkpoints when run again, and runs
already evaluated are read back, not redone, also when only --results records them (a
workdir lost with its machine; the record's config must match). After every run it
rewrites, from every finished run under --workdir (also those another invocation's
`--runs` trained) and in --results:

  results.md     Inception Score ± std and FID per run next to the paper's IS
  results.json   every run's metrics.json and wall times
  <setting>_<prior>_{samples_grid,reconstructions,tsne}.png   each run's figures

`--report_only` writes them without training (a table still under way).

The Inception Score needs Inception weights WITH the 1008-way `fc` layer (the full
pytorch-fid release, converted by `python -m lpaae_jax.evaluation.convert_inception`; point
`--config.eval.inception_weights` or $LPAAE_INCEPTION_WEIGHTS at the .npz). With pool3-only
weights the table shows FID and says why IS is missing. `--judge` adds the conditional /
cluster accuracy of the supervised / unsupervised runs.
"""

import os
import platform
import shutil
import time
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from lpaae_jax.configs import default
from experiments import run_utils
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax.evaluation import judge

# DESIGN §5: Inception Score on CIFAR-10 (proposed = learned prior, baseline = fixed prior).
PAPER_INCEPTION_SCORE = {
    ("none", "learned"): 7.31, ("none", "fixed"): 6.37,
    ("supervised", "learned"): 6.52, ("supervised", "fixed"): 6.20,
    ("unsupervised", "learned"): 6.02, ("unsupervised", "fixed"): 5.73,
}
SETTING_NAMES = {"none": "image generation", "supervised": "supervised",
                 "unsupervised": "unsupervised"}
RUNS = tuple(PAPER_INCEPTION_SCORE)
RUN_NAMES = {f"{condition}_{prior}": (condition, prior) for condition, prior in RUNS}


def _define_flags() -> None:
  config_flags.DEFINE_config_file("config", "configs/cifar10.py",
                                  "Base config of the six runs (its setting/prior variant "
                                  "is replaced run by run).", lock_config=True)
  flags.DEFINE_string("workdir", None, "Root of the six run directories.")
  flags.DEFINE_string("results", "experiments/paper_table/results",
                      "Where results.md and results.json go.")
  flags.DEFINE_string("judge", None, "Judge classifier (lpaae_jax.evaluation.judge) for the "
                      "conditional / cluster accuracy.")
  flags.DEFINE_list("runs", list(RUN_NAMES), "The runs to train and evaluate, from: "
                    f"{', '.join(RUN_NAMES)}.")
  flags.DEFINE_bool("report_only", False, "Train nothing: write the results of the finished "
                    "runs (e.g. to commit a table that is still under way).")
  flags.mark_flags_as_required(["workdir"])


def run_configs(base: ml_collections.ConfigDict, workdir: Optional[str] = None,
                runs=RUNS) -> dict[tuple[str, str], ml_collections.ConfigDict]:
  """`base` with each (setting, prior) of `runs` (default: the paper's six). With a
  workdir, the runs share one cache of the real split's FID statistics in it (unless the
  base config names one): the same split and Inception for all six, computed once."""
  unknown = set(runs) - set(RUNS)
  if unknown:
    raise config_validation.ConfigError(
        f"Unknown paper-table runs {sorted(unknown)}: choose from {', '.join(RUN_NAMES)}.")
  configs = {}
  for condition, prior in runs:
    config = base.copy_and_resolve_references()
    default.apply_variant(config, f"{condition},{prior}")
    if workdir is not None and not config.eval.get("stats_cache_dir"):
      config.eval.stats_cache_dir = os.path.join(workdir, "fid_reference")
    config_validation.validate_config(config)  # every run's config checked before training
    configs[(condition, prior)] = config
  return configs


def _format(metrics: dict, key: str, std_key: str = "") -> str:
  value = metrics.get(key)
  if value is None:
    return "–"
  text = f"{value:.2f}"
  if std_key and metrics.get(std_key) is not None:
    text += f" ± {metrics[std_key]:.2f}"
  return text


def _judge_accuracy(metrics: dict) -> str:
  """The judge's conditional (supervised) or cluster (unsupervised) accuracy, "–" without."""
  for key in ("conditional_accuracy", "cluster_accuracy"):
    if metrics.get(key) is not None:
      return f"{metrics[key]:.3f}"
  return "–"


def markdown_table(runs: dict[tuple[str, str], dict]) -> str:
  """One row per run of the paper's table: ours (IS ± std, FID) beside the paper's IS, then
  what else the evaluation measured (reconstruction MSE, k-means NMI of the encoder's codes,
  the judge's conditional or cluster accuracy when a judge was given)."""
  lines = ["| setting | prior | IS (ours) | IS (paper) | FID (ours) | step | train h "
           "| rec. MSE | k-means NMI (codes) | judge acc. (cond. / cluster) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  notes = set()
  for condition, prior in RUNS:
    paper = f"{PAPER_INCEPTION_SCORE[(condition, prior)]:.2f}"
    run = runs.get((condition, prior))
    if run is None:
      lines.append(f"| {SETTING_NAMES[condition]} | {prior} | not run | {paper} | not run "
                   "| | | | | |")
      continue
    metrics = run["metrics"]
    if run.get("diverged"):
      cells = ["diverged", paper, "diverged", "", f"{run['train_seconds'] / 3600:.2f}",
               "", "", ""]
    else:
      cells = [_format(metrics, "inception_score", "inception_score_std"), paper,
               _format(metrics, "fid"), str(metrics.get("step", "")),
               f"{run['train_seconds'] / 3600:.2f}",
               "–" if metrics.get("reconstruction_mse") is None
               else f"{metrics['reconstruction_mse']:.4f}",
               "–" if metrics.get("kmeans_nmi") is None else f"{metrics['kmeans_nmi']:.3f}",
               _judge_accuracy(metrics)]
      notes.update(f"{key}: {reason}" for key, reason in
                   metrics.get("unavailable", {}).items() if key in ("inception_score", "fid"))
    lines.append(f"| {SETTING_NAMES[condition]} | {prior} | " + " | ".join(cells) + " |")
  if notes:
    lines += ["", "Not computed:"] + [f"- {note}" for note in sorted(notes)]
  return "\n".join(lines)


def _run_dir(workdir: str, condition: str, prior: str) -> str:
  return os.path.join(workdir, f"{condition}_{prior}")


def _sample_counts(base: ml_collections.ConfigDict) -> str:
  real = base.eval.get("num_real_samples")
  real_text = (f"the first {real} images" if real else "the whole split") + \
      f" of {base.dataset}'s {base.eval_split} split"
  return (f"{base.eval.num_samples} generated samples per IS/FID ({base.eval.num_splits} "
          f"IS splits), FID against {real_text}")


def write_results(out_dir: str, base: ml_collections.ConfigDict,
                  runs: dict[tuple[str, str], dict], wall_seconds: float, *,
                  workdir: Optional[str] = None, judge_path: Optional[str] = None) -> str:
  """results.md, results.json and (given the workdir) each evaluated run's figures."""
  os.makedirs(out_dir, exist_ok=True)
  hardware = (f"{jax.device_count()} x {jax.devices()[0].device_kind} "
              f"({jax.default_backend()}), {platform.machine()} host with {os.cpu_count()} "
              f"cores, jax {jax.__version__}")
  judge_text = ""
  if judge_path:
    info = judge.load_judge(judge_path, dataset=base.dataset).info
    judge_text = (f"Judge classifier (conditional / cluster accuracy): "
                  f"{os.path.relpath(judge_path)}, test accuracy {info['test_accuracy']:.3f} "
                  f"on {info['num_test']} {info['eval_split']} images, trained "
                  f"{info['steps']} steps on the {info['train_split']} split.")
  if workdir is not None:
    for (condition, prior), run in runs.items():
      if run.get("diverged"):
        continue
      for figure, file in evaluate.FIGURE_FILES.items():
        source = os.path.join(_run_dir(workdir, condition, prior), "eval", file)
        if os.path.exists(source):
          shutil.copyfile(source, os.path.join(out_dir, f"{condition}_{prior}_{figure}.png"))
  report = "\n".join([
      "# Inception Score on CIFAR-10: learned vs. fixed prior", "",
      f"Config: dataset {base.dataset}, width {base.model.width}, batch {base.batch_size}, "
      f"{base.num_train_steps} iterations; {_sample_counts(base)}.",
      *([judge_text] if judge_text else []),
      f"Hardware: {hardware}. Wall time of the last invocation: {wall_seconds / 3600:.2f} h "
      "(runs finished by an earlier one are read back; their own hours are in the table).",
      "", markdown_table(runs), ""])
  path = os.path.join(out_dir, "results.md")
  file_utils.write_atomically(path, lambda f: f.write(report.encode("utf-8")))
  run_utils.write_json(os.path.join(out_dir, "results.json"), {
      "config": run_utils.relative_paths(base.to_dict()), "hardware": hardware,
      "wall_seconds": wall_seconds,
      "paper_inception_score": {f"{c}_{p}": v for (c, p), v in PAPER_INCEPTION_SCORE.items()},
      "runs": {f"{c}_{p}": run for (c, p), run in runs.items()}})
  return report


def recorded_runs(base: ml_collections.ConfigDict,
                  results_dir: str) -> dict[tuple[str, str], dict]:
  """The runs results_dir/results.json records as evaluated with the config `base` gives
  them (paths aside, and fields added since at their defaults). A session's workdir may not
  outlive it; its committed results do, so a run finished in an earlier session stays in
  the table and is not trained again."""
  recorded = (run_utils.read_json(os.path.join(results_dir, "results.json")) or {}).get(
      "runs", {})
  runs = {}
  for key, config in run_configs(base).items():
    record = run_utils.recorded_run(recorded.get("_".join(key)), config)
    if record is not None:
      runs[key] = record
  return runs


def finished_runs(base: ml_collections.ConfigDict, workdir: str,
                  results_dir: Optional[str] = None) -> dict[tuple[str, str], dict]:
  """The records of every run of the six already evaluated (or diverged) under workdir,
  and (given results_dir) of those its results.json records as finished."""
  runs = recorded_runs(base, results_dir) if results_dir else {}
  for key, config in run_configs(base, workdir).items():
    record = run_utils.finished_run(config, _run_dir(workdir, *key))
    if record is not None:
      runs[key] = run_utils.relative_paths(record)
  return runs


def run_table(base: ml_collections.ConfigDict, workdir: str, results_dir: str, *,
              judge_path: Optional[str] = None, runs=RUNS, report_only: bool = False) -> str:
  """Trains/evaluates those of `runs` (default: all six) not finished yet, rewriting the
  results (every finished run under workdir) after each; returns results.md's text. Stops
  early (results written) if a run is interrupted. report_only: trains nothing."""
  configs = run_configs(base, workdir, runs)
  start = time.time()
  write = lambda: write_results(results_dir, base, finished_runs(base, workdir, results_dir),
                                time.time() - start, workdir=workdir, judge_path=judge_path)
  if report_only:
    return write()
  recorded = recorded_runs(base, results_dir)
  report = ""
  for number, ((condition, prior), config) in enumerate(configs.items(), start=1):
    run_dir = _run_dir(workdir, condition, prior)
    if (condition, prior) in recorded and run_utils.finished_run(config, run_dir) is None:
      logging.info("Skipping %s: %s/results.json records it as evaluated at step %d.",
                   run_dir, results_dir, config.num_train_steps)
      report = write()
      continue
    logging.info("Paper table: run %s (%d of %d).", run_dir, number, len(configs))
    try:
      run_utils.run_once(config, run_dir,
                         judge_path=judge_path if condition != "none" else None)
    except run_utils.RunInterrupted as interrupted:
      logging.warning("%s", interrupted)  # preempted: the checkpoint is saved; exit cleanly
      break
    finally:
      report = write()
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = flags.FLAGS
  unknown = set(FLAGS.runs) - set(RUN_NAMES)
  if unknown:
    raise app.UsageError(f"--runs: unknown {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(RUN_NAMES)}.")
  print(run_table(FLAGS.config, FLAGS.workdir, FLAGS.results, judge_path=FLAGS.judge,
                  runs=[RUN_NAMES[name] for name in FLAGS.runs],
                  report_only=FLAGS.report_only))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
