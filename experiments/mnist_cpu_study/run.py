r"""Learned vs. fixed prior on real MNIST, on a 2-core CPU: experiments/mnist_cpu_study/README.md.

  LPAAE_DATA_DIR=../shared/tfds python -m experiments.mnist_cpu_study.run \
      --workdir=runs/mnist_cpu_study --results=experiments/mnist_cpu_study/results

Trains {none, supervised, unsupervised} x {learned, fixed} prior x seeds at a reduced width
and length (configs/mnist.py, only width and iterations overridden: 3000, the unsupervised
setting 4500), evaluates each run with
`lpaae_jax.evaluate.evaluate_states` (judge accuracies, k-means of encoder codes, judge-feature
FID against the test split, reconstruction MSE, grids, t-SNE) and writes to --results:

  results.md     mean ± std (over seeds) per cell, and the per-seed numbers
  results.json   every run's metrics.json, timings and the study's settings
  *.png          the sample grid and t-SNE map of each cell's first seed

Runs live in --workdir/<setting>_<prior>_seed<k>; a run whose evaluation is complete (in its
workdir, or recorded in --results/results.json for the config it would train now: a new
machine keeps the committed runs) is skipped and an interrupted one resumes from its
checkpoint, so re-running the command after an interruption finishes the study. The results
cover every finished run and are rewritten after each one; --report_only writes them
without training (a study still under way). The judge classifier is trained once, into
--workdir/judge. Each setting's runs share one worker process (--workers=n: n settings in
parallel), so its train steps compile once; this process then reads every run back and
writes the tables.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from lpaae_jax.configs import mnist
from experiments import run_utils
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax.evaluation import judge

SETTINGS = ("none", "supervised", "unsupervised")
PRIORS = ("learned", "fixed")
# One metric per column of results.md: (metrics.json key, header, decimals).
COLUMNS = (
    ("conditional_accuracy", "conditional acc. (judge)", 3),
    ("cluster_accuracy", "cluster acc. (judge)", 3),
    ("reconstruction_judge_accuracy", "rec. judge acc.", 3),
    ("kmeans_accuracy", "k-means acc. (codes)", 3),
    ("kmeans_nmi", "k-means NMI (codes)", 3),
    ("judge_fid", "judge-feature FID", 2),
    ("reconstruction_mse", "rec. MSE", 4),
)


def _define_flags() -> None:
  flags.DEFINE_string("workdir", "runs/mnist_cpu_study", "Checkpoints, logs and the judge.")
  flags.DEFINE_string("results", "experiments/mnist_cpu_study/results",
                      "Where results.md, results.json and the PNGs go.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every cell.")
  flags.DEFINE_list("settings", list(SETTINGS), "Subset of none,supervised,unsupervised.")
  flags.DEFINE_list("priors", list(PRIORS), "Subset of learned,fixed.")
  flags.DEFINE_integer("steps", 3000, "Training iterations per run (--setting_steps overrides).")
  flags.DEFINE_list("setting_steps", ["unsupervised:4500"],
                    "setting:iterations, the settings that train longer than --steps. The "
                    "unsupervised categories take longest to separate (learned prior, seeds "
                    "0-2, cluster accuracy 0.811 / 0.680 / 0.965 at 3000 iterations).")
  flags.DEFINE_integer("steps_per_jit", 4, "Iterations per compiled call (config.steps_per_jit:"
                       " the same training up to float reassociation, about 20% faster at "
                       "width 8 on the 2-core CPU).")
  flags.DEFINE_integer("width", 8, "model.width (paper: 64).")
  flags.DEFINE_integer("judge_steps", 2000, "Training steps of the judge classifier.")
  flags.DEFINE_integer("num_samples", 5000, "Generated samples per evaluation.")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default $LPAAE_DATA_DIR).")
  flags.DEFINE_bool("report_only", False, "Train nothing: write the results of the finished "
                    "runs (e.g. to commit a study that is still under way).")
  flags.DEFINE_integer("workers", 1, "Processes training the settings in parallel (one per "
                       "setting). On this project's 2-core CPU one width-8 run already uses "
                       "both cores: two in parallel trained at 1.9 iterations/s each against "
                       "4.8 alone, so 1 is faster there; more cores may gain from more.")


def study_config(setting: str, prior: str, seed: int, *, steps: int, width: int,
                 num_samples: int, judge_path: str, data_dir,
                 steps_per_jit: int = 1) -> ml_collections.ConfigDict:
  """configs/mnist.py:<setting>,<prior> at a CPU-sized width and length: nothing else of
  the model or its training differs from the defaults."""
  config = mnist.get_config(f"{setting},{prior}")
  config.seed = seed
  config.data_dir = data_dir
  config.model.width = width
  config.num_train_steps = steps
  config.steps_per_jit = steps_per_jit
  config.log_every_steps = min(100, steps)
  config.eval_every_steps = steps  # cheap image summaries at the end only
  config.checkpoint_every_steps = min(400, steps)
  config.eval.num_samples = num_samples
  config.eval.judge_path = judge_path
  # The test split (10k) is the reference of every metric; the judge's features replace
  # Inception for the FID (InceptionV3 at 299x299 costs minutes per run on 2 cores).
  config.eval.use_inception = False
  return config


def ensure_judge(judge_dir: str, steps: int, data_dir) -> tuple[str, dict]:
  """Trains the MNIST judge once; later runs of the study load it."""
  info_path = os.path.join(judge_dir, judge.JSON_NAME)
  if not os.path.isfile(info_path):
    config = mnist.get_config()
    config.data_dir = data_dir
    logging.info("Training the judge classifier (%d steps) into %s.", steps, judge_dir)
    params, info = judge.train_judge(config, num_steps=steps)
    os.makedirs(judge_dir, exist_ok=True)
    judge.save_judge(judge_dir, params, info)
  with open(info_path, encoding="utf-8") as info_file:
    return judge_dir, json.load(info_file)


def _mean_std(values: list[float]) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def aggregate(runs: dict[tuple[str, str, int], dict]) -> dict[tuple[str, str], dict]:
  """{(setting, prior): {metric: (mean, std, [per-seed values])}} over the seeds."""
  cells: dict[tuple[str, str], dict] = {}
  for (setting, prior, _), run in sorted(runs.items()):
    cell = cells.setdefault((setting, prior), {})
    for key, _, _ in COLUMNS:
      if key in run["metrics"] and run["metrics"][key] is not None:
        cell.setdefault(key, []).append(float(run["metrics"][key]))
  return {cell: {key: (*_mean_std(values), values) for key, values in metrics.items()}
          for cell, metrics in cells.items()}


def markdown_table(cells: dict[tuple[str, str], dict]) -> str:
  """Mean ± sample std over seeds; a column only where some cell has the metric."""
  columns = [c for c in COLUMNS if any(c[0] in cell for cell in cells.values())]
  lines = ["| setting | prior | seeds | " + " | ".join(header for _, header, _ in columns)
           + " |", "|---|---|---|" + "---|" * len(columns)]
  for (setting, prior), cell in sorted(cells.items()):
    num_seeds = max((len(values) for _, _, values in cell.values()), default=0)
    entries = [str(num_seeds)]
    for key, _, decimals in columns:
      if key in cell:
        mean, std, _ = cell[key]
        entries.append(f"{mean:.{decimals}f} ± {std:.{decimals}f}")
      else:
        entries.append("–")
    lines.append(f"| {setting} | {prior} | " + " | ".join(entries) + " |")
  lines.append("")
  lines.append("Mean ± sample standard deviation over the finished seeds of each cell (a "
               "diverged run is left out: see the per-run table).")
  return "\n".join(lines)


def per_seed_table(runs: dict[tuple[str, str, int], dict]) -> str:
  columns = [c for c in COLUMNS if any(c[0] in r["metrics"] for r in runs.values())]
  lines = ["| setting | prior | seed | " + " | ".join(h for _, h, _ in columns)
           + " | train s | eval s |", "|---|---|---|" + "---|" * (len(columns) + 2)]
  for (setting, prior, seed), run in sorted(runs.items()):
    values = [("diverged" if run.get("diverged") else "–") if run["metrics"].get(k) is None
              else f"{run['metrics'][k]:.{d}f}" for k, _, d in columns]
    lines.append(f"| {setting} | {prior} | {seed} | " + " | ".join(values)
                 + f" | {run['train_seconds']:.0f} | {run.get('eval_seconds', 0):.0f} |")
  return "\n".join(lines)


def run_workers(settings: list[str], num_workers: int) -> None:
  """Runs each setting's runs in its own process (this command with --settings=<one>),
  at most num_workers at a time; raises if one fails."""
  forwarded = [arg for arg in sys.argv[1:]
               if not arg.startswith(("--settings", "--workers", "--results"))]
  pending = list(settings)
  running: list[tuple[str, subprocess.Popen]] = []
  while pending or running:
    while pending and len(running) < num_workers:
      setting = pending.pop(0)
      command = [sys.executable, "-m", "experiments.mnist_cpu_study.run", *forwarded,
                 f"--settings={setting}", "--workers=1",
                 f"--results={os.path.join(flags.FLAGS.workdir, 'worker_' + setting)}"]
      logging.info("Worker for %s: %s", setting, " ".join(command))
      running.append((setting, subprocess.Popen(command)))
    setting, process = running.pop(0)
    if process.wait() != 0:
      for _, other in running:
        other.terminate()
      raise RuntimeError(f"The {setting} worker failed (exit {process.returncode}); its log "
                         "is above. Run the same command again to resume.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = flags.FLAGS
  for name, chosen, allowed in (("settings", FLAGS.settings, SETTINGS),
                                ("priors", FLAGS.priors, PRIORS)):
    if not chosen or set(chosen) - set(allowed):
      raise app.UsageError(f"--{name}={','.join(chosen)}: choose from {','.join(allowed)}.")
  seeds = [int(seed) for seed in FLAGS.seeds]
  steps = parse_setting_steps(FLAGS.setting_steps, FLAGS.steps)
  os.makedirs(FLAGS.results, exist_ok=True)
  study_start = time.time()

  judge_path, judge_info = ensure_judge(os.path.join(FLAGS.workdir, "judge"),
                                        FLAGS.judge_steps, FLAGS.data_dir)
  logging.info("Judge test accuracy %.4f.", judge_info["test_accuracy"])
  settings = dict(width=FLAGS.width, num_samples=FLAGS.num_samples,
                  steps_per_jit=FLAGS.steps_per_jit, judge_path=judge_path,
                  data_dir=FLAGS.data_dir)
  # The report covers every finished run of the whole study (earlier invocations' other
  # settings too) and is rewritten after each run: an interrupted study's committed results
  # are never older than its last finished run.
  study = {(setting, prior, seed): study_config(setting, prior, seed, steps=steps[setting],
                                                **settings)
           for setting in SETTINGS for prior in PRIORS for seed in seeds}
  settings["steps"] = steps
  for config in study.values():  # every bad setting fails before any training
    config_validation.validate_config(config)
  to_train = [] if FLAGS.report_only else [
      key for key in study if key[0] in FLAGS.settings and key[1] in FLAGS.priors]

  if FLAGS.workers > 1 and len(FLAGS.settings) > 1 and to_train:
    run_workers(FLAGS.settings, FLAGS.workers)  # then every run below is read back
  # Runs the committed results record with the config they would train now count as
  # finished (a new machine has no workdirs); a finished workdir's record replaces them.
  recorded = (run_utils.read_json(os.path.join(FLAGS.results, "results.json")) or {}).get(
      "runs", {})
  runs = {}
  for (setting, prior, seed), config in study.items():
    record = run_utils.recorded_run(recorded.get(f"{setting}_{prior}_seed{seed}"), config)
    if record is not None:
      runs[(setting, prior, seed)] = record
  for key, config in study.items():
    finished = run_utils.finished_run(config, _run_dir(*key))
    if finished is not None:
      runs[key] = run_utils.relative_paths(finished)
  for key in to_train:
    if key not in runs:
      runs[key] = run_utils.relative_paths(run_utils.run_once(study[key], _run_dir(*key)))
      write_report(runs, seeds, settings, judge_info, time.time() - study_start)
  report = write_report(runs, seeds, settings, judge_info, time.time() - study_start)
  print(report)


def parse_setting_steps(overrides: list[str], steps: int) -> dict[str, int]:
  """{setting: iterations}: --steps, except where --setting_steps names the setting."""
  per_setting = dict.fromkeys(SETTINGS, steps)
  for item in overrides:
    setting, _, value = item.partition(":")
    if setting not in SETTINGS or not value.isdigit() or int(value) < 1:
      raise app.UsageError(f"--setting_steps={item}: write setting:iterations with a setting "
                           f"from {','.join(SETTINGS)} and a positive integer, e.g. "
                           "unsupervised:4500.")
    per_setting[setting] = int(value)
  return per_setting


def _run_dir(setting: str, prior: str, seed: int) -> str:
  return os.path.join(flags.FLAGS.workdir, f"{setting}_{prior}_seed{seed}")


def write_report(runs: dict[tuple[str, str, int], dict], seeds: list[int], settings: dict,
                 judge_info: dict, wall_seconds: float) -> str:
  """results.md, results.json and each cell's first-seed figures -> results.md's text."""
  results = flags.FLAGS.results
  for setting, prior, seed in runs:
    if seed == seeds[0] and not runs[(setting, prior, seed)].get("diverged"):
      for figure in ("samples_grid", "tsne"):
        source = os.path.join(_run_dir(setting, prior, seed), "eval",
                              evaluate.FIGURE_FILES[figure])
        if os.path.isfile(source):  # a recorded run's figures are already in results
          shutil.copyfile(source, os.path.join(results, f"{setting}_{prior}_{figure}.png"))
  cells = aggregate(runs)
  hardware = (f"{platform.machine()} CPU, {os.cpu_count()} cores, "
              f"{jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__}")
  flag_text = " ".join(f"--{k}={v}" for k, v in sorted(settings.items())
                       if k not in ("judge_path", "data_dir", "steps"))
  steps_text = ", ".join(f"{setting} {steps}" for setting, steps in settings["steps"].items())
  # Records kept from earlier invocations may have run at another steps_per_jit.
  made_at: dict[int, set[str]] = {}
  for (setting, prior, _), run in runs.items():
    made_by = run["metrics"].get("provenance", {}).get("config")
    if made_by is not None:
      made_at.setdefault(made_by.get("steps_per_jit", 1), set()).add(f"{setting}_{prior}")
  missing = [f"{s}_{p}_seed{k}" for s in SETTINGS for p in PRIORS for k in seeds
             if (s, p, k) not in runs]
  report = "\n".join([
      "# MNIST CPU study: learned vs. fixed prior", "",
      f"Settings: {flag_text}, seeds {','.join(map(str, seeds))}; iterations: {steps_text}; "
      "judge test accuracy "
      f"{judge_info['test_accuracy']:.4f} (trained once, {judge_info['steps']} steps in "
      f"{judge_info['train_seconds'] / 60:.1f} min).",
      f"Hardware: {hardware}. Wall time of the last invocation: {wall_seconds / 60:.1f} min "
      "(runs finished by an earlier invocation are read back, not re-timed; their train/eval "
      "seconds are in the per-run table)."
      + ("" if len(made_at) < 2 else
         " Iterations per compiled call (steps_per_jit; the same training up to float "
         "reassociation): " + "; ".join(f"{k} in {', '.join(sorted(v))}"
                                         for k, v in sorted(made_at.items())) + "."), "",
      ("Not run yet (the same command trains them): " + ", ".join(missing) + "."
       if missing else "Every run of the study is finished."), "",
      markdown_table(cells), "", "## Per run", "", per_seed_table(runs), ""])
  file_utils.write_atomically(os.path.join(results, "results.md"),
                              lambda f: f.write(report.encode("utf-8")))
  run_utils.write_json(os.path.join(results, "results.json"), {
      "settings": run_utils.relative_paths({k: v for k, v in settings.items()
                                            if k != "data_dir"}),
      "seeds": seeds, "hardware": hardware, "wall_seconds": wall_seconds,
      "judge": judge_info, "not_run": missing,
      "cells": {f"{s}_{p}": {k: {"mean": m, "std": sd, "values": v}
                             for k, (m, sd, v) in cell.items()}
                for (s, p), cell in cells.items()},
      "runs": {f"{s}_{p}_seed{k}": run for (s, p, k), run in runs.items()},
  })
  return report


if __name__ == "__main__":
  _define_flags()
  app.run(main)
