"""The experiment commands end to end on the tiny config: the paper table (two of its six
runs, skip finished runs, stop cleanly when a run is interrupted), the figures, the CPU
study's table."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

from absl import app
import numpy as np
import pytest
from flax import traverse_util
from PIL import Image

from experiments import run_utils
from experiments.figures import run as figures_run
from experiments.mnist_cpu_study import run as study
from experiments.paper_table import run as paper_table
from lpaae_jax import config_validation
from lpaae_jax import provenance
from lpaae_jax import train
from tests.helpers import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEIGHTS_NAME = "pt_inception-2015-12-05_fid_nofc.npz"
# The supervised pair (what the figures need): the other four are the same command with
# other variants, each of which train_steps_test and evaluation_test exercise.
TABLE_RUNS = (("supervised", "learned"), ("supervised", "fixed"))


def _table_config(data_dir, inception_dir):
  return tiny_config(**{
      "data_dir": str(data_dir), "download": False, "num_train_steps": 2,
      "log_every_steps": 1, "checkpoint_every_steps": 2, "eval_every_steps": 2,
      "eval.num_samples": 20, "eval.batch_size": 10, "eval.num_real_samples": 30,
      "eval.num_tsne_points": 30, "eval.num_splits": 2,
      # No precise-BN pass: its compile per run is most of a tiny run's evaluation, and the
      # table does not depend on it (tests/inference_test.py covers it).
      "eval.recalibrate_bn_batches": 0,
      "eval.inception_weights": str(inception_dir / WEIGHTS_NAME)})


@pytest.fixture(scope="module")
def paper_table_run(real_data_dir, inception_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp("paper_table")
  config = _table_config(real_data_dir, inception_dir)
  report = paper_table.run_table(config, str(root / "runs"), str(root / "results"),
                                 runs=TABLE_RUNS)
  return config, root, report


def test_paper_table_runs_the_chosen_runs_and_writes_the_table(paper_table_run):
  _, root, report = paper_table_run
  assert report == (root / "results" / "results.md").read_text()
  rows = [line for line in report.splitlines() if line.startswith("| ")][1:]
  assert len(rows) == 6
  for (condition, prior), paper_is in paper_table.PAPER_INCEPTION_SCORE.items():
    row = next(r for r in rows
               if r.startswith(f"| {paper_table.SETTING_NAMES[condition]} | {prior} |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3] == f"{paper_is:.2f}"  # the paper's IS, run or not
    if (condition, prior) not in TABLE_RUNS:
      assert cells[2] == cells[4] == "not run", row
      continue
    assert cells[5] == "2"  # our step
    assert np.isfinite(float(cells[4]))  # FID with the shared pool3 weights
    assert 0 < float(cells[7]) and 0 <= float(cells[8]) <= 1  # rec. MSE, k-means NMI
    assert cells[9] == "–"  # no judge given
    assert cells[2] == "–"  # no IS: the shared weights have no fc layer, and the note says so
  assert "inception_score: the Inception weights" in report and "'fc'" in report
  results = run_utils.read_json(str(root / "results" / "results.json"))
  assert set(results["runs"]) == {f"{c}_{p}" for c, p in TABLE_RUNS}
  # One FID reference for the runs: the real split's statistics are computed once.
  assert [path.name for path in (root / "runs" / "fid_reference").iterdir()] == [
      f"fid_reference_mnist_test_30_{WEIGHTS_NAME[:-4]}.npz"]


def test_cpu_scale_table_config_changes_only_the_scale():
  # configs/cifar10_cpu.py is the paper-scale config with fewer, narrower iterations and
  # cheaper evaluation: any other difference would make the CPU table a different model.
  from lpaae_jax.configs import cifar10, cifar10_cpu
  flat = lambda config: dict(traverse_util.flatten_dict(config.to_dict(), sep="."))
  paper, cpu = flat(cifar10.get_config("supervised")), flat(cifar10_cpu.get_config("supervised"))
  assert paper.keys() == cpu.keys()
  changed = {key for key in paper if paper[key] != cpu[key]}
  assert changed - {key for key in changed if key.startswith("eval.")} == {
      "model.width", "num_train_steps", "eval_every_steps",
      "checkpoint_every_steps"}
  config_validation.validate_config(cifar10_cpu.get_config("unsupervised,fixed"))


def test_paper_table_refuses_an_unknown_run(tmp_path):
  with pytest.raises(ValueError, match="Unknown paper-table runs.*none_learned"):
    paper_table.run_table(tiny_config(), str(tmp_path / "runs"), str(tmp_path / "results"),
                          runs=[("none", "learnt")])
  assert not (tmp_path / "runs").exists()


def test_paper_table_rerun_skips_finished_runs(paper_table_run, monkeypatch):
  config, root, report = paper_table_run

  def must_not_train(*args, **kwargs):
    raise AssertionError("a finished run was trained again")

  monkeypatch.setattr(train, "train_and_evaluate", must_not_train)
  again = paper_table.run_table(config, str(root / "runs"), str(root / "results2"),
                                runs=TABLE_RUNS)
  strip_time = lambda text: [l for l in text.splitlines() if not l.startswith("Hardware")]
  assert strip_time(again) == strip_time(report)


def test_paper_table_report_covers_every_finished_run_with_its_figures(paper_table_run,
                                                                       monkeypatch, tmp_path):
  config, root, _ = paper_table_run
  # Runs split over two invocations (--runs) share one table: a report-only call, asked for
  # one run, lists both finished ones and copies their figures, training nothing.
  monkeypatch.setattr(train, "train_and_evaluate", lambda *args, **kwargs: pytest.fail(
      "report_only trained"))
  report = paper_table.run_table(config, str(root / "runs"), str(tmp_path),
                                 runs=TABLE_RUNS[:1], report_only=True)
  assert report.count("not run") == 2 * (6 - len(TABLE_RUNS))
  assert "generated samples per IS/FID" in report and "against the first 30 images" in report
  assert sorted(path.name for path in tmp_path.glob("*.png")) == sorted(
      f"{c}_{p}_{figure}.png" for c, p in TABLE_RUNS
      for figure in ("samples_grid", "reconstructions", "tsne"))


def test_paper_table_keeps_runs_its_results_record_when_the_workdir_is_gone(
    paper_table_run, monkeypatch, tmp_path):
  config, root, report = paper_table_run
  # A new machine: the committed results (and their figures) are all that is left of the
  # finished runs. The same command keeps them and trains nothing; a config that computes
  # something else (another seed) does not claim them.
  results = tmp_path / "results"
  shutil.copytree(root / "results", results)
  monkeypatch.setattr(train, "train_and_evaluate", lambda *args, **kwargs: pytest.fail(
      "a recorded run was trained again"))
  again = paper_table.run_table(config, str(tmp_path / "new_workdir"), str(results),
                                runs=TABLE_RUNS)
  strip_time = lambda text: [l for l in text.splitlines() if not l.startswith("Hardware")]
  assert strip_time(again) == strip_time(report)
  assert len(list(results.glob("*.png"))) == 3 * len(TABLE_RUNS)
  other_seed = config.copy_and_resolve_references()
  other_seed.seed += 1
  assert paper_table.recorded_runs(other_seed, str(results)) == {}
  assert set(paper_table.recorded_runs(config, str(results))) == set(TABLE_RUNS)
  # Records made before a config field existed still match at its default (which keeps
  # the model as it was), not at another value.
  record = json.loads((results / "results.json").read_text())
  for run in record["runs"].values():
    del run["metrics"]["provenance"]["config"]["model"]["decoder_norm"]
  (results / "results.json").write_text(json.dumps(record))
  assert set(paper_table.recorded_runs(config, str(results))) == set(TABLE_RUNS)
  other_decoder = config.copy_and_resolve_references()
  other_decoder.model.decoder_norm = "batch"
  assert paper_table.recorded_runs(other_decoder, str(results)) == {}
  # Records made while a since-retired field existed match at its neutral value only.
  monkeypatch.setitem(config_validation.RETIRED_FIELDS, "model.widget",
                      config_validation.RetiredField(0, "abc1234"))
  for value, matches in ((0, True), (3, False)):
    for run in record["runs"].values():
      run["metrics"]["provenance"]["config"]["model"]["widget"] = value
    (results / "results.json").write_text(json.dumps(record))
    assert bool(paper_table.recorded_runs(config, str(results))) == matches


def test_interrupted_run_stops_the_table_cleanly(paper_table_run, monkeypatch, tmp_path):
  config, root, _ = paper_table_run
  # A run whose training returns before its last step (what SIGTERM does) is not evaluated:
  # the command writes what finished and stops; the same command resumes later.
  longer = config.copy_and_resolve_references()
  longer.num_train_steps = 4
  longer.model.condition = "supervised"  # the run interrupted below
  monkeypatch.setattr(train, "train_and_evaluate", lambda *args, **kwargs: None)
  with pytest.raises(run_utils.RunInterrupted, match="stopped at step 2 of 4"):
    run_utils.run_once(longer, str(root / "runs" / "supervised_learned"))
  report = paper_table.run_table(longer, str(root / "runs"), str(tmp_path), runs=TABLE_RUNS)
  assert report.count("not run") == 2 * 6  # run 1 interrupted: none of the six evaluated


def test_figures_from_two_finished_runs(paper_table_run, tmp_path):
  config, root, _ = paper_table_run
  supervised = config.copy_and_resolve_references()
  supervised.model.condition = "supervised"
  paths = figures_run.make_figures(supervised, str(root / "runs" / "supervised_learned"),
                                   str(root / "runs" / "supervised_fixed"), str(tmp_path),
                                   num_tsne_points=30)
  assert set(paths) == {"figure3_learned", "figure3_fixed", "figure4_tsne",
                        "reconstructions_learned", "reconstructions_fixed"}
  rows = config.num_grid_rows
  assert Image.open(paths["figure3_learned"]).size == (10 * 32, rows * 32)
  assert Image.open(paths["figure4_tsne"]).size[0] > 3 * Image.open(paths["figure4_tsne"]).size[1] / 2


def test_figures_refuse_a_missing_run(paper_table_run, tmp_path):
  config, root, _ = paper_table_run
  supervised = config.copy_and_resolve_references()
  supervised.model.condition = "supervised"
  with pytest.raises(FileNotFoundError, match="No checkpoint"):
    figures_run.make_figures(supervised, str(root / "runs" / "supervised_learned"),
                             str(tmp_path / "missing"), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()  # nothing drawn before both runs are found


def test_study_table_mean_and_sample_std_over_seeds():
  runs = {("supervised", "learned", seed): {"metrics": {"conditional_accuracy": value,
                                                        "kmeans_nmi": 0.5},
                                            "train_seconds": 1.0}
          for seed, value in enumerate((0.8, 0.9, 1.0))}
  runs[("supervised", "fixed", 0)] = {"metrics": {}, "diverged": "NaN", "train_seconds": 1.0}
  cells = study.aggregate(runs)
  mean, std, values = cells[("supervised", "learned")]["conditional_accuracy"]
  assert mean == pytest.approx(0.9) and std == pytest.approx(0.1) and values == [0.8, 0.9, 1.0]
  table = study.markdown_table(cells)
  assert "| supervised | learned | 3 | 0.900 ± 0.100 |" in table
  assert "diverged" in study.per_seed_table(runs)


def test_results_name_existing_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
  judge_dir = tmp_path / "runs" / "judge"
  judge_dir.mkdir(parents=True)
  monkeypatch.chdir(tmp_path)
  record = {"metrics": {"judge": str(judge_dir), "step": 3,
                        "provenance": {"config": {"eval": {"judge_path": str(judge_dir),
                                                           "other": "/no/such/path"}}}},
            "paths": [str(judge_dir), "relative/already"],
            "unavailable": f"the judge {judge_dir} has no  head; see /no/such/path"}
  assert run_utils.relative_paths(record) == {
      "metrics": {"judge": "runs/judge", "step": 3,
                  "provenance": {"config": {"eval": {"judge_path": "runs/judge",
                                                     "other": "/no/such/path"}}}},
      "paths": ["runs/judge", "relative/already"],
      "unavailable": "the judge runs/judge has no  head; see /no/such/path"}


def _study_workdir(workdir, finished):
  """A study workdir with a judge and the `finished` runs ((setting, prior, seed) -> metrics),
  each evaluated at step 7 with its figures."""
  (workdir / "judge").mkdir(parents=True)
  run_utils.write_json(str(workdir / "judge" / "judge.json"),
                       {"test_accuracy": 0.99, "steps": 10, "train_seconds": 1.0})
  for (setting, prior, seed), metrics in finished.items():
    run_dir = workdir / f"{setting}_{prior}_seed{seed}"
    (run_dir / "eval").mkdir(parents=True)
    run_utils.write_json(str(run_dir / "eval" / "metrics.json"), {"step": 7, **metrics})
    run_utils.write_json(str(run_dir / run_utils.RUN_INFO), {"train_seconds": 60.0})
    for name in ("samples_grid.png", "tsne.png"):
      (run_dir / "eval" / name).write_bytes(b"png")


def test_study_report_covers_every_finished_run_without_training(tmp_path):
  """--report_only: the finished runs of any setting are tabulated, the rest named as not
  run, nothing is trained (so a study under way can be committed)."""
  workdir, results = tmp_path / "study", tmp_path / "results"
  _study_workdir(workdir, {("supervised", "learned", 0): {"conditional_accuracy": 0.9},
                           ("unsupervised", "fixed", 1): {"cluster_accuracy": 0.5}})
  unfinished = workdir / "none_learned_seed0"
  (unfinished / "eval").mkdir(parents=True)  # evaluated at an earlier step: not finished
  run_utils.write_json(str(unfinished / "eval" / "metrics.json"), {"step": 3})
  run_utils.write_json(str(unfinished / run_utils.RUN_INFO), {"train_seconds": 1.0})
  subprocess.run([sys.executable, "-m", "experiments.mnist_cpu_study.run", "--report_only",
                  f"--workdir={workdir}", f"--results={results}", "--steps=7", "--seeds=0,1",
                  "--setting_steps=unsupervised:7"],
                 cwd=ROOT, check=True, capture_output=True, timeout=300)
  assert sorted(p.name for p in unfinished.iterdir()) == ["eval", run_utils.RUN_INFO]
  report = (results / "results.md").read_text()
  assert "| supervised | learned | 1 | 0.900 ± 0.000 |" in report
  assert "| unsupervised | fixed | 1 | – | 0.500 ± 0.000 |" in report
  not_run = report.split("Not run yet (the same command trains them): ")[1].split(".\n")[0]
  assert "none_learned_seed0" in not_run.split(", ")  # evaluated at an earlier step only
  assert len(not_run.split(", ")) == 3 * 2 * 2 - 2
  assert "supervised_learned_seed0" not in not_run.split(", ")
  assert (results / "supervised_learned_samples_grid.png").exists()  # the cell's first seed
  assert not (results / "unsupervised_fixed_samples_grid.png").exists()  # seed 1 only


def test_study_keeps_runs_its_results_record_when_the_workdir_is_gone(tmp_path):
  """A new machine has no workdirs: a run that the committed results.json records with the
  config the study would train now stays in the table (not trained again); one recorded
  without its config does not."""
  workdir, results = tmp_path / "study", tmp_path / "results"
  # Recorded at steps_per_jit 1, read back by a command at 4 (its default): the same training.
  config = study.study_config("supervised", "learned", 0, steps=7, width=8, num_samples=5000,
                              judge_path=str(workdir / "judge"), data_dir=None,
                              steps_per_jit=1)
  made_by = json.loads(provenance.config_to_json(config))["config"]
  _study_workdir(workdir, {("supervised", "learned", 0): {"conditional_accuracy": 0.9,
                                                          "provenance": {"config": made_by}},
                           ("supervised", "fixed", 0): {"conditional_accuracy": 0.8}})
  command = [sys.executable, "-m", "experiments.mnist_cpu_study.run", "--report_only",
             f"--workdir={workdir}", f"--results={results}", "--steps=7", "--seeds=0"]
  subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
  for setting_prior in ("supervised_learned", "supervised_fixed"):
    shutil.rmtree(workdir / f"{setting_prior}_seed0")
  subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
  report = (results / "results.md").read_text()
  assert "| supervised | learned | 1 | 0.900 ± 0.000 |" in report
  not_run = report.split("Not run yet (the same command trains them): ")[1].split(".\n")[0]
  assert "supervised_fixed_seed0" in not_run.split(", ")
  assert "supervised_learned_seed0" not in not_run.split(", ")
  assert (results / "supervised_learned_samples_grid.png").exists()
  # A setting trained for more iterations than the record is not the recorded run.
  longer = [*command, "--setting_steps=supervised:8"]
  subprocess.run(longer, cwd=ROOT, check=True, capture_output=True, timeout=300)
  not_run = (results / "results.md").read_text().split(
      "Not run yet (the same command trains them): ")[1].split(".\n")[0]
  assert "supervised_learned_seed0" in not_run.split(", ")
  assert "iterations: none 7, supervised 8, unsupervised 7;" in (
      results / "results.md").read_text()


def test_study_setting_steps_override_steps_per_setting_and_reject_bad_values():
  assert study.parse_setting_steps(["unsupervised:4500"], 3000) == {
      "none": 3000, "supervised": 3000, "unsupervised": 4500}
  assert study.parse_setting_steps([], 7) == dict.fromkeys(study.SETTINGS, 7)
  for bad in ("unsupervised", "unsupervised:0", "cluster:4500", "unsupervised:4e3"):
    with pytest.raises(app.UsageError, match="--setting_steps=.*setting:iterations"):
      study.parse_setting_steps([bad], 3000)


def test_category_confusion_counts_each_category_and_agrees_with_the_cluster_accuracy(
    trained_judge_dir):
  import jax  # pylint: disable=g-import-not-at-top
  from scipy import optimize  # pylint: disable=g-import-not-at-top

  import lpaae_jax  # pylint: disable=g-import-not-at-top
  from experiments.fidelity import category_confusion  # pylint: disable=g-import-not-at-top
  from lpaae_jax.evaluation import judge  # pylint: disable=g-import-not-at-top
  config = tiny_config("unsupervised", **{"eval.recalibrate_bn_batches": 0})
  states = lpaae_jax.create_states(config, jax.random.key(0))
  counts, accuracy = category_confusion.category_table(
      config, states, judge.load_judge(trained_judge_dir, dataset="mnist"), 100)
  assert counts.shape == (10, 10)
  np.testing.assert_array_equal(counts.sum(axis=1), 10)  # one row per s, s balanced
  rows, columns = optimize.linear_sum_assignment(-counts)
  assert accuracy == pytest.approx(counts[rows, columns].sum() / 100)

  table = category_confusion.markdown("run", 7, counts, accuracy).splitlines()
  assert table[0] == f"### run, step 7: cluster accuracy {accuracy:.3f}"
  for s, line in enumerate(table[4:]):
    assert [int(cell) for cell in line.strip("|").split("|")] == [s, *counts[s]]


def _seed_run(fid=None, accuracy=None, key="conditional_accuracy", step=20, **extra):
  """A finished run's record as results.json holds it (only the metrics that matter here)."""
  metrics = {name: value for name, value in (("fid", fid), (key, accuracy)) if value is not None}
  return {"metrics": {"step": step, **metrics, **extra}, "train_seconds": 1080.0,
          "eval_seconds": 300.0}


def test_paper_table_seeds_mean_std_and_the_all_seeds_claim():
  runs = {}
  for seed, (learned_fid, fixed_fid, learned_acc, fixed_acc) in enumerate(
      ((100.0, 105.0, 0.5, 0.45), (110.0, 115.0, 0.4, 0.45), (120.0, 125.0, 0.6, 0.45))):
    runs[("supervised", "learned", seed)] = _seed_run(learned_fid, learned_acc,
                                                      sample_lattice_ratio_p2=1.1)
    runs[("supervised", "fixed", seed)] = _seed_run(fixed_fid, fixed_acc)
  # Unsupervised: seed 1 of the fixed prior not run yet, so one seed has both.
  runs[("unsupervised", "learned", 0)] = _seed_run(90.0, 0.3, key="cluster_accuracy")
  runs[("unsupervised", "learned", 1)] = _seed_run(95.0, 0.2, key="cluster_accuracy")
  runs[("unsupervised", "fixed", 0)] = _seed_run(80.0, 0.1, key="cluster_accuracy")
  runs[("none", "fixed", 0)] = {"metrics": {}, "diverged": "NaN", "train_seconds": 60.0}

  mean, std, values = paper_table.aggregate(runs)[("supervised", "learned")]["fid"]
  assert (mean, std, values) == (pytest.approx(110.0), pytest.approx(10.0),
                                 [100.0, 110.0, 120.0])
  table = paper_table.seed_table(runs)
  assert table.splitlines()[0] == ("| setting | prior | seeds | FID | judge cond. acc. | "
                                   "judge cluster acc. | lattice p2 |")
  assert ("| supervised | learned | 3 | 110.0 ± 10.0 | 0.500 ± 0.100 | – | 1.10 ± 0.00 |"
          in table)
  assert "| image generation | fixed | 0 | – | – | – | – |" in table  # diverged: left out
  assert "| unsupervised | fixed | 1 | 80.0 ± 0.0 | – | 0.100 ± 0.000 | – |" in table
  assert paper_table.prior_comparison(runs, 3) == [
      "- image generation: nothing to compare yet.",  # its one run diverged
      "- supervised: FID (lower is better): learned prior better in every seed both have "
      "(0, 1, 2); judge cond. acc. (higher is better): seeds disagree, no claim (learned "
      "better in 0, 2, fixed in 1).",
      "- unsupervised: FID (lower is better): fixed prior better in every seed both have "
      "(0), 1 of 3 seeds: not yet a claim; judge cluster acc. (higher is better): learned "
      "prior better in every seed both have (0), 1 of 3 seeds: not yet a claim."]
  per_run = paper_table.per_run_table(runs)
  assert "| image generation | fixed | 0 | diverged | diverged | diverged | diverged |" in per_run
  assert "| supervised | fixed | 1 | 115.0 | 0.450 | – | – | 20 | 0.30 | 5.0 |" in per_run


def test_paper_table_seed_flag_and_run_names():
  assert paper_table.parse_seeds(["0", "1", "2"]) == [0, 1, 2]
  for bad in (["a"], ["0", "0"], ["-1"], []):
    with pytest.raises(app.UsageError, match=r"--seeds=.*e\.g\. --seeds=0,1,2"):
      paper_table.parse_seeds(bad)
  # One seed: the names of the table before --seeds (its records read back); several: per seed.
  assert paper_table.run_name("supervised", "fixed", 0, [0]) == "supervised_fixed"
  assert paper_table.run_name("supervised", "fixed", 1, [1]) == "supervised_fixed"
  assert paper_table.run_name("supervised", "fixed", 1, [0, 1]) == "supervised_fixed_seed1"
  configs = paper_table.study_configs(tiny_config(), "/runs", seeds=[0, 1])
  assert list(configs) == [(c, p, seed) for seed in (0, 1) for c, p in paper_table.RUNS]
  assert [config.seed for config in configs.values()] == [0] * 6 + [1] * 6


def test_paper_table_seeds_read_back_records_keyed_as_before(tmp_path, monkeypatch):
  """A one-seed table reads back its results.json record keyed <setting>_<prior>; a seeded
  study reads it back as seed 0 (same config), keys its runs by seed and copies the figures
  of each cell's first seed. Nothing is trained."""
  monkeypatch.setattr(train, "train_and_evaluate", lambda *args, **kwargs: pytest.fail(
      "a recorded run was trained again"))
  base, workdir = tiny_config(), tmp_path / "runs"
  configs = paper_table.study_configs(base, str(workdir), seeds=[0, 1])

  def record(key, fid):
    made_by = json.loads(provenance.config_to_json(configs[key]))["config"]
    return _seed_run(fid, step=configs[key].num_train_steps, provenance={"config": made_by})

  one_seed = tmp_path / "one_seed"
  one_seed.mkdir()
  run_utils.write_json(str(one_seed / "results.json"), {"runs": {
      "supervised_learned": record(("supervised", "learned", 0), 50.0)}})
  seeded = tmp_path / "seeded"
  shutil.copytree(one_seed, seeded)
  assert set(paper_table.recorded_runs(base, str(one_seed))) == {("supervised", "learned")}
  report = paper_table.run_table(base, str(workdir), str(one_seed),
                                 runs=[("supervised", "learned")], seeds=[0])
  assert "| supervised | learned | – | 6.52 | 50.00 |" in report
  assert set(run_utils.read_json(str(one_seed / "results.json"))["runs"]) == {
      "supervised_learned"}

  # Seed 1 of the fixed prior finished in the workdir, with seed 0's figures beside it.
  for seed in (0, 1):
    run_dir = workdir / f"supervised_fixed_seed{seed}"
    (run_dir / "eval").mkdir(parents=True)
    run_utils.write_json(str(run_dir / "eval" / "metrics.json"),
                         {"step": configs[("supervised", "fixed", seed)].num_train_steps,
                          "fid": 60.0 + seed})
    run_utils.write_json(str(run_dir / run_utils.RUN_INFO), {"train_seconds": 60.0})
    (run_dir / "eval" / "samples_grid.png").write_bytes(f"seed {seed}".encode())
  report = paper_table.run_table(base, str(workdir), str(seeded), seeds=[0, 1],
                                 report_only=True)
  assert set(run_utils.read_json(str(seeded / "results.json"))["runs"]) == {
      "supervised_learned_seed0", "supervised_fixed_seed0", "supervised_fixed_seed1"}
  not_run = report.split("Not run yet (the same command trains them): ")[1].split(".\n")[0]
  assert len(not_run.split(", ")) == 12 - 3 and "supervised_learned_seed1" in not_run
  assert "| supervised | fixed | 2 | 60.5 ± 0.7 |" in report
  assert (seeded / "supervised_fixed_samples_grid.png").read_bytes() == b"seed 0"
