r"""The paper's Inception-Score table: six CIFAR-10 runs, learned vs. fixed prior (DESIGN §5).

  python -m experiments.paper_table.run --workdir=runs/paper_table \
      [--config=configs/cifar10.py] [--config.num_train_steps=...] [--judge=judges/cifar10] \
      [--results=experiments/paper_table/results] [--runs=supervised_learned,supervised_fixed]
      [--seeds=0,1,2] [--report_only]

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

`--seeds=0,1,2` repeats the study per seed (`config.seed`), seed by seed, each run in
`--workdir/<setting>_<prior>_seed<k>` and keyed so in results.json (one seed: as above,
unsuffixed; a seed's unsuffixed record is read back where its config matches). results.md
then holds each cell's mean ± std over its finished seeds, per setting whether the learned
prior beats the fixed one in every seed both have, the per-run numbers and the runs not run
yet; the figures are those of each cell's first seed.

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
from typing import Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

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
# The seeded study's per-cell and per-run columns: (metrics.json key, header, decimals); a
# column appears only where some run has the metric.
SEED_COLUMNS = (
    ("inception_score", "IS", 2),
    ("fid", "FID", 1),
    ("conditional_accuracy", "judge cond. acc.", 3),
    ("cluster_accuracy", "judge cluster acc.", 3),
    ("reconstruction_judge_accuracy", "rec. judge acc.", 3),
    ("reconstruction_mse", "rec. MSE", 4),
    ("kmeans_nmi", "k-means NMI (codes)", 3),
    ("sample_lattice_ratio_p2", "lattice p2", 2),
    ("sample_lattice_ratio_p4", "lattice p4", 2),
    ("sample_lattice_ratio_p8", "lattice p8", 2),
    ("sample_colour_grain_ratio", "colour grain", 2),
)
# The metrics the learned and fixed priors are compared on, seed by seed: key -> (name,
# whether higher is better).
CLAIM_METRICS = {
    "inception_score": ("IS", True),
    "fid": ("FID", False),
    "conditional_accuracy": ("judge cond. acc.", True),
    "cluster_accuracy": ("judge cluster acc.", True),
}


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
  flags.DEFINE_list("seeds", ["0"], "Seeds (config.seed) of every run, trained seed by seed; "
                    "with several, runs are <setting>_<prior>_seed<k> and results.md gives "
                    "mean ± std over seeds. Not given: --config.seed alone.")
  flags.DEFINE_bool("report_only", False, "Train nothing: write the results of the finished "
                    "runs (e.g. to commit a table that is still under way).")
  flags.mark_flags_as_required(["workdir"])


def parse_seeds(values: Sequence[str]) -> list[int]:
  """--seeds' values as distinct non-negative integers, in their order."""
  text = ",".join(values)
  if (not values or not all(value.strip().isdigit() for value in values)
      or len(set(map(int, values))) != len(values)):
    raise app.UsageError(f"--seeds={text}: give distinct non-negative integers, e.g. "
                         "--seeds=0,1,2.")
  return [int(value) for value in values]


def run_name(condition: str, prior: str, seed: int, seeds: Sequence[int]) -> str:
  """A run's directory and results.json key: unsuffixed in a one-seed table (its records
  from before --seeds read back), <setting>_<prior>_seed<k> in a seeded study."""
  return f"{condition}_{prior}" if len(seeds) == 1 else f"{condition}_{prior}_seed{seed}"


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


def study_configs(base: ml_collections.ConfigDict, workdir: Optional[str] = None, runs=RUNS,
                  seeds: Optional[Sequence[int]] = None
                  ) -> dict[tuple[str, str, int], ml_collections.ConfigDict]:
  """run_configs for each seed (default: base's own) as config.seed, seed by seed (an
  interrupted study has its earlier seeds complete)."""
  configs = {}
  for seed in _seeds(base, seeds):
    seeded = base.copy_and_resolve_references()
    seeded.seed = seed
    for (condition, prior), config in run_configs(seeded, workdir, runs).items():
      configs[(condition, prior, seed)] = config
  return configs


def _seeds(base: ml_collections.ConfigDict, seeds: Optional[Sequence[int]]) -> list[int]:
  return list(seeds) if seeds else [base.seed]


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


def _unavailable_notes(runs) -> list[str]:
  """Why IS or FID is missing (e.g. Inception weights without the fc layer), once each."""
  notes = {f"{key}: {reason}" for run in runs.values() if not run.get("diverged")
           for key, reason in run["metrics"].get("unavailable", {}).items()
           if key in ("inception_score", "fid")}
  return ["", "Not computed:"] + [f"- {note}" for note in sorted(notes)] if notes else []


def markdown_table(runs: dict[tuple[str, str], dict]) -> str:
  """One row per run of the paper's table: ours (IS ± std, FID) beside the paper's IS, then
  what else the evaluation measured (reconstruction MSE, k-means NMI of the encoder's codes,
  the judge's conditional or cluster accuracy when a judge was given)."""
  lines = ["| setting | prior | IS (ours) | IS (paper) | FID (ours) | step | train h "
           "| rec. MSE | k-means NMI (codes) | judge acc. (cond. / cluster) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
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
    lines.append(f"| {SETTING_NAMES[condition]} | {prior} | " + " | ".join(cells) + " |")
  return "\n".join(lines + _unavailable_notes(runs))


def _row(cells) -> str:
  return "| " + " | ".join(cells) + " |"


def aggregate(runs: dict[tuple[str, str, int], dict]) -> dict[tuple[str, str], dict]:
  """{(setting, prior): {metric: (mean, sample std, [per-seed values])}} over the finished
  seeds of each of the six cells (a diverged run has no metrics: left out)."""
  cells = {cell: {} for cell in RUNS}
  for (condition, prior, _), run in sorted(runs.items()):
    for key, _, _ in SEED_COLUMNS:
      if run["metrics"].get(key) is not None:
        cells[(condition, prior)].setdefault(key, []).append(float(run["metrics"][key]))
  return {cell: {key: (float(np.mean(values)),
                       float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, values)
                 for key, values in metrics.items()} for cell, metrics in cells.items()}


def seed_table(runs: dict[tuple[str, str, int], dict]) -> str:
  """Per cell: its finished seeds, then mean ± sample std of each metric over them."""
  cells = aggregate(runs)
  columns = [c for c in SEED_COLUMNS if any(c[0] in cell for cell in cells.values())]
  lines = [_row(["setting", "prior", "seeds", *(h for _, h, _ in columns)]),
           "|---|---|---|" + "---|" * len(columns)]
  for condition, prior in RUNS:
    cell = cells[(condition, prior)]
    finished = sum(1 for (c, p, _), run in runs.items()
                   if (c, p) == (condition, prior) and not run.get("diverged"))
    entries = [str(finished)] + [
        f"{cell[key][0]:.{d}f} ± {cell[key][1]:.{d}f}" if key in cell else "–"
        for key, _, d in columns]
    lines.append(_row([SETTING_NAMES[condition], prior, *entries]))
  lines += ["", "Mean ± sample standard deviation over the finished seeds of each cell (a "
            "diverged run is left out: see the per-run table)."]
  return "\n".join(lines)


def per_run_table(runs: dict[tuple[str, str, int], dict]) -> str:
  if not runs:
    return "No run finished yet."
  columns = [c for c in SEED_COLUMNS if any(c[0] in r["metrics"] for r in runs.values())]
  lines = [_row(["setting", "prior", "seed", *(h for _, h, _ in columns), "step", "train h",
                 "eval min"]), "|---|---|---|" + "---|" * (len(columns) + 3)]
  order = {run: number for number, run in enumerate(RUNS)}
  for condition, prior, seed in sorted(runs, key=lambda k: (order[k[:2]], k[2])):
    run = runs[(condition, prior, seed)]
    values = [("diverged" if run.get("diverged") else "–") if run["metrics"].get(k) is None
              else f"{run['metrics'][k]:.{d}f}" for k, _, d in columns]
    lines.append(_row([SETTING_NAMES[condition], prior, str(seed), *values,
                       str(run["metrics"].get("step", "")), f"{run['train_seconds'] / 3600:.2f}",
                       f"{run.get('eval_seconds', 0) / 60:.1f}"]))
  return "\n".join(lines)


def _compare(learned: dict[int, float], fixed: dict[int, float], higher_is_better: bool,
             num_seeds: int) -> str:
  """Which prior is ahead, seed by seed, over the seeds both cells have."""
  common = sorted(set(learned) & set(fixed))
  if not common:
    return "no seed has both priors yet"
  ahead = lambda seed: (learned[seed] - fixed[seed]) * (1 if higher_is_better else -1)
  wins = {"learned": [seed for seed in common if ahead(seed) > 0],
          "fixed": [seed for seed in common if ahead(seed) < 0]}
  listed = lambda seeds: ", ".join(map(str, seeds)) or "none"
  for prior, won in wins.items():
    if won == common:
      return (f"{prior} prior better in every seed both have ({listed(common)})"
              + ("" if len(common) == num_seeds
                 else f", {len(common)} of {num_seeds} seeds: not yet a claim"))
  ties = [seed for seed in common if ahead(seed) == 0]
  return (f"seeds disagree, no claim (learned better in {listed(wins['learned'])}, fixed in "
          f"{listed(wins['fixed'])}" + (f", equal in {listed(ties)}" if ties else "") + ")")


def prior_comparison(runs: dict[tuple[str, str, int], dict], num_seeds: int) -> list[str]:
  """Per setting, one line: for each of CLAIM_METRICS some run has, whether the learned
  prior beats the fixed one in every seed both cells have (a claim only if so in all
  num_seeds seeds), or the fixed one the learned one, or the seeds disagree."""
  lines = []
  for condition in SETTING_NAMES:
    parts = []
    for key, (name, higher_is_better) in CLAIM_METRICS.items():
      values = {prior: {seed: float(run["metrics"][key]) for (c, p, seed), run in runs.items()
                        if (c, p) == (condition, prior) and run["metrics"].get(key) is not None}
                for prior in ("learned", "fixed")}
      if values["learned"] or values["fixed"]:
        better = "higher" if higher_is_better else "lower"
        parts.append(f"{name} ({better} is better): "
                     + _compare(values["learned"], values["fixed"], higher_is_better,
                                num_seeds))
    lines.append(f"- {SETTING_NAMES[condition]}: "
                 + ("; ".join(parts) if parts else "nothing to compare yet") + ".")
  return lines


def _run_dir(workdir: str, condition: str, prior: str, seed: int,
             seeds: Sequence[int]) -> str:
  return os.path.join(workdir, run_name(condition, prior, seed, seeds))


def _sample_counts(base: ml_collections.ConfigDict) -> str:
  real = base.eval.get("num_real_samples")
  real_text = (f"the first {real} images" if real else "the whole split") + \
      f" of {base.dataset}'s {base.eval_split} split"
  return (f"{base.eval.num_samples} generated samples per IS/FID ({base.eval.num_splits} "
          f"IS splits), FID against {real_text}")


def _seeded_report(runs: dict[tuple[str, str, int], dict], seeds: Sequence[int]) -> list[str]:
  """results.md's body for several seeds: what is not run yet, per cell, the learned
  against the fixed prior seed by seed, per run."""
  missing = [run_name(c, p, seed, seeds) for seed in seeds for c, p in RUNS
             if (c, p, seed) not in runs]
  return [("Not run yet (the same command trains them): " + ", ".join(missing) + "."
           if missing else "Every run of the study is finished."), "",
          "## Per cell", "", seed_table(runs), "",
          "Learned against fixed prior, seed by seed (a difference is a claim only where its "
          f"sign is the same in all {len(seeds)} seeds):", "",
          *prior_comparison(runs, len(seeds)), "",
          "## Per run", "", per_run_table(runs), *_unavailable_notes(runs)]


def write_results(out_dir: str, base: ml_collections.ConfigDict,
                  runs: dict[tuple[str, str, int], dict], wall_seconds: float, *,
                  workdir: Optional[str] = None, judge_path: Optional[str] = None,
                  seeds: Optional[Sequence[int]] = None) -> str:
  """results.md, results.json and (given the workdir) the figures of each evaluated run of
  the first seed."""
  seeds = _seeds(base, seeds)
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
    for (condition, prior, seed), run in runs.items():
      if run.get("diverged") or seed != seeds[0]:
        continue
      for figure, file in evaluate.FIGURE_FILES.items():
        source = os.path.join(_run_dir(workdir, condition, prior, seed, seeds), "eval", file)
        if os.path.exists(source):
          shutil.copyfile(source, os.path.join(out_dir, f"{condition}_{prior}_{figure}.png"))
  seeded = len(seeds) > 1
  report = "\n".join([
      "# Inception Score on CIFAR-10: learned vs. fixed prior"
      + (f", seeds {', '.join(map(str, seeds))}" if seeded else ""), "",
      f"Config: dataset {base.dataset} (training split {base.train_split}), width "
      f"{base.model.width}, batch {base.batch_size}, {base.num_train_steps} iterations; "
      f"{_sample_counts(base)}"
      + (f"; config.seed {', '.join(map(str, seeds))} (figures: seed {seeds[0]})."
         if seeded else "."),
      *([judge_text] if judge_text else []),
      f"Hardware: {hardware}. Wall time of the last invocation: {wall_seconds / 3600:.2f} h "
      "(runs finished by an earlier one are read back; their own hours are in the table).",
      "", *(_seeded_report(runs, seeds) if seeded else
            [markdown_table({key[:2]: run for key, run in runs.items()})]), ""])
  path = os.path.join(out_dir, "results.md")
  file_utils.write_atomically(path, lambda f: f.write(report.encode("utf-8")))
  cells = aggregate(runs)
  run_utils.write_json(os.path.join(out_dir, "results.json"), {
      "config": run_utils.relative_paths(base.to_dict()), "hardware": hardware,
      "wall_seconds": wall_seconds, "seeds": seeds,
      "paper_inception_score": {f"{c}_{p}": v for (c, p), v in PAPER_INCEPTION_SCORE.items()},
      **({"cells": {f"{c}_{p}": {k: {"mean": m, "std": sd, "values": v}
                                 for k, (m, sd, v) in cell.items()}
                    for (c, p), cell in cells.items()}} if seeded else {}),
      "runs": {run_name(c, p, seed, seeds): run for (c, p, seed), run in runs.items()}})
  return report


def recorded_study(base: ml_collections.ConfigDict, results_dir: str,
                   seeds: Optional[Sequence[int]] = None
                   ) -> dict[tuple[str, str, int], dict]:
  """The runs results_dir/results.json records as evaluated with the config `base` gives
  them for each seed, under their name or (from a one-seed table) unsuffixed: the config
  (paths aside, fields added since at their defaults, the seed included) decides."""
  seeds = _seeds(base, seeds)
  recorded = (run_utils.read_json(os.path.join(results_dir, "results.json")) or {}).get(
      "runs", {})
  runs = {}
  for (condition, prior, seed), config in study_configs(base, seeds=seeds).items():
    for name in dict.fromkeys((run_name(condition, prior, seed, seeds),
                               f"{condition}_{prior}")):
      record = run_utils.recorded_run(recorded.get(name), config)
      if record is not None:
        runs[(condition, prior, seed)] = record
        break
  return runs


def recorded_runs(base: ml_collections.ConfigDict,
                  results_dir: str) -> dict[tuple[str, str], dict]:
  """The runs results_dir/results.json records as evaluated with the config `base` gives
  them (paths aside, and fields added since at their defaults). A session's workdir may not
  outlive it; its committed results do, so a run finished in an earlier session stays in
  the table and is not trained again."""
  return {key[:2]: run for key, run in recorded_study(base, results_dir).items()}


def finished_runs(base: ml_collections.ConfigDict, workdir: str,
                  results_dir: Optional[str] = None,
                  seeds: Optional[Sequence[int]] = None) -> dict[tuple[str, str, int], dict]:
  """The records of every run of the six per seed already evaluated (or diverged) under
  workdir, and (given results_dir) of those its results.json records as finished."""
  seeds = _seeds(base, seeds)
  runs = recorded_study(base, results_dir, seeds) if results_dir else {}
  for key, config in study_configs(base, workdir, seeds=seeds).items():
    record = run_utils.finished_run(config, _run_dir(workdir, *key, seeds))
    if record is not None:
      runs[key] = run_utils.relative_paths(record)
  return runs


def run_table(base: ml_collections.ConfigDict, workdir: str, results_dir: str, *,
              judge_path: Optional[str] = None, runs=RUNS,
              seeds: Optional[Sequence[int]] = None, report_only: bool = False) -> str:
  """Trains/evaluates those of `runs` (default: all six) for each seed (default: base's
  own) not finished yet, seed by seed, rewriting the results (every finished run under
  workdir) after each; returns results.md's text. Stops early (results written) if a run is
  interrupted. report_only: trains nothing."""
  seeds = _seeds(base, seeds)
  configs = study_configs(base, workdir, runs, seeds)
  start = time.time()
  write = lambda: write_results(
      results_dir, base, finished_runs(base, workdir, results_dir, seeds),
      time.time() - start, workdir=workdir, judge_path=judge_path, seeds=seeds)
  if report_only:
    return write()
  recorded = recorded_study(base, results_dir, seeds)
  report = ""
  for number, (key, config) in enumerate(configs.items(), start=1):
    run_dir = _run_dir(workdir, *key, seeds)
    if key in recorded and run_utils.finished_run(config, run_dir) is None:
      logging.info("Skipping %s: %s/results.json records it as evaluated at step %d.",
                   run_dir, results_dir, config.num_train_steps)
      report = write()
      continue
    logging.info("Paper table: run %s (%d of %d).", run_dir, number, len(configs))
    try:
      run_utils.run_once(config, run_dir, judge_path=judge_path if key[0] != "none" else None)
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
  seeds = parse_seeds(FLAGS.seeds)
  if not FLAGS["seeds"].present:  # --config.seed=k alone still means one run per cell at k
    seeds = [FLAGS.config.seed]
  elif FLAGS.config.seed != 0:
    raise app.UsageError(f"--config.seed={FLAGS.config.seed} with "
                         f"--seeds={','.join(FLAGS.seeds)}: give the seeds with --seeds only.")
  print(run_table(FLAGS.config, FLAGS.workdir, FLAGS.results, judge_path=FLAGS.judge,
                  runs=[RUN_NAMES[name] for name in FLAGS.runs], seeds=seeds,
                  report_only=FLAGS.report_only))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
