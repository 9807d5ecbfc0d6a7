"""train_and_evaluate end to end under mock data: files, summaries, exact resume, errors."""

import functools
import json
import pathlib
import shutil

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import lpaae_jax
from lpaae_jax import backend
from lpaae_jax import checkpointing
from lpaae_jax import configs
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import provenance
from lpaae_jax import train
from lpaae_jax.cpu import malloc
from tests.helpers import (assert_states_close, leaves_equal, run_config, state_drift,
                           tiny_config, to_host, train_mocked)


def event_tags(workdir: pathlib.Path) -> dict[str, set[str]]:
  """TensorBoard tags by plugin ('scalars', 'images', ...) in the workdir's event files."""
  tags: dict[str, set[str]] = {}
  for path in workdir.glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name or "scalars"
        tags.setdefault(plugin, set()).add(value.tag)
  return tags


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  config = run_config(tmp_path_factory.mktemp("data"), **{"eval.full_eval_at_end": True})
  states = train_mocked(config, workdir)
  return config, workdir, to_host(states)


def test_train_writes_checkpoints_and_summaries(finished_run):
  _, workdir, _ = finished_run
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [2, 4]
  tags = event_tags(workdir)
  for tag in ("aae/feature_rec_loss", "aae/code_disc_loss", "aae/encoder_adv_loss",
              "aae/p_code_real", "prior/image_disc_loss", "prior/generator_loss",
              "prior/p_image_real", "prior/p_image_noise", "images_per_sec", "steps_per_sec",
              "eval/pixel_rec_mse"):
    assert tag in tags["scalars"], (tag, sorted(tags["scalars"]))
  assert {"samples", "reconstructions"} <= tags["images"]


def test_training_with_the_cpu_fast_paths_keeps_freed_memory(finished_run):
  config, _, _ = finished_run
  if not backend.from_config(config).cpu or malloc._glibc() is None:  # pylint: disable=protected-access
    pytest.skip("the CPU fast paths on glibc's malloc only")
  if malloc.malloc_library(kept_memory=False) in ("tcmalloc", "jemalloc"):
    pytest.skip("a preloaded malloc keeps freed memory itself")
  assert malloc.kept()
  assert malloc.malloc_library().endswith("freed memory kept")


def test_training_stores_its_resolved_config(finished_run):
  config, workdir, _ = finished_run
  assert provenance.load_config(str(workdir)) == config  # exactly, tuples included
  assert json.loads((workdir / "config.json").read_text())["config"]["model"]["width"] == 4


def test_restore_latest_gives_the_final_states(finished_run):
  config, workdir, final = finished_run
  restored, step = checkpointing.restore_latest(config, str(workdir))
  assert step == 4
  assert leaves_equal(to_host(restored), final)


def test_resume_is_exact(finished_run, tmp_path):
  """4 steps straight == 2 steps, stop, the same command again to 4: bit-identical on CPU
  (batches and keys are functions of (seed, step); the steps are deterministic)."""
  config, _, straight = finished_run
  data_dir = tmp_path / "data"
  train_mocked(run_config(data_dir, num_train_steps=2), tmp_path / "run")
  resumed = train_mocked(run_config(data_dir), tmp_path / "run")
  assert leaves_equal(to_host(resumed), straight)


def test_rerunning_a_finished_run_changes_nothing(finished_run):
  config, workdir, final = finished_run
  states = train_mocked(config, workdir)
  assert leaves_equal(to_host(states), final)


def test_incompatible_checkpoint_is_named_not_overwritten(finished_run):
  config, workdir, _ = finished_run
  wider = run_config(config.data_dir, **{"model.width": 8})
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match="model.width=4, but this config has model.width=8"):
    train_mocked(wider, workdir)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()
                if p.name.isdigit()) == ["2", "4"]


def test_a_bad_config_value_on_restoring_leaves_the_checkpoints_alone(finished_run):
  # A config error is not damage: nothing may be moved to checkpoints_unusable/.
  config, workdir, _ = finished_run
  bad = run_config(config.data_dir, **{"model.prior": "learnt"})
  with pytest.raises(config_validation.ConfigError, match="model.prior='learnt'"):
    checkpointing.restore_latest(bad, str(workdir))
  assert not (workdir / "checkpoints_unusable").exists()
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()
                if p.name.isdigit()) == ["2", "4"]


def test_bad_inputs_fail_before_compiling(tmp_path):
  with pytest.raises(ValueError, match="svhn"):  # the message lists the supported datasets
    train.train_and_evaluate(run_config(tmp_path, dataset="imagenet2012"), str(tmp_path / "a"))
  with pytest.raises(config_validation.ConfigError, match="config.log_every_steps=0"):
    train.train_and_evaluate(run_config(tmp_path, log_every_steps=0), str(tmp_path / "b"))
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  with pytest.raises(OSError, match="not writable"):
    train.train_and_evaluate(run_config(tmp_path), str(blocker / "run"))


def test_non_finite_metrics_name_phase_step_and_term():
  metrics = [{"aae/rec_loss": jax.numpy.float32(1.0), "prior/generator_loss": np.float32(1)},
             {"aae/rec_loss": jax.numpy.float32(np.nan), "prior/generator_loss": np.float32(1)}]
  with pytest.raises(train.NonFiniteLossError, match="rec_loss = nan in the aae phase at step 11"):
    train.check_finite(train.stack_to_host(metrics), first_step=10)


  # A fused call's metrics come stacked (k,): steps are counted through them.
  fused = [{"aae/rec_loss": jax.numpy.array([1.0, 1.0]), "prior/generator_loss": np.ones(2)},
           {"aae/rec_loss": jax.numpy.array([1.0, np.inf, 1.0]),
            "prior/generator_loss": np.ones(3)}]
  with pytest.raises(train.NonFiniteLossError, match="rec_loss = inf in the aae phase at step 13"):
    train.check_finite(train.stack_to_host(fused), first_step=10)


def test_steps_per_jit_loop_fuses_iterations_and_matches_step_by_step(finished_run, tmp_path,
                                                                      monkeypatch):
  """steps_per_jit=4 with every interval 4: one fused call for the 4 iterations, the same
  checkpoint and summaries, final states within the fused tolerance of the step-by-step
  run (tests/scale_out_test.py states and measures it)."""
  _, _, step_by_step = finished_run
  calls = []
  make_steps = train.make_loop_steps

  def counting_fused_calls(*args):
    steps = make_steps(*args)

    def counted(states, batches, train_key, first_step):
      calls.append((first_step, batches["image"].shape[:2]))
      return steps.iterations(states, batches, train_key, first_step)
    return steps._replace(iterations=counted)

  monkeypatch.setattr(train, "make_loop_steps", counting_fused_calls)
  config = run_config(tmp_path / "data", steps_per_jit=4, log_every_steps=4,
                      checkpoint_every_steps=4, eval_every_steps=4)
  fused = to_host(train_mocked(config, tmp_path / "run"))
  assert calls == [(0, (4, config.batch_size))]
  assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()
                if p.name.isdigit()) == ["4"]
  tags = event_tags(tmp_path / "run")
  assert {"aae/feature_rec_loss", "prior/generator_loss", "images_per_sec"} <= tags["scalars"]
  measured = state_drift(fused, step_by_step, config.optim.learning_rate)
  print(f"\nloop steps_per_jit=4 vs step by step: {measured}")
  assert_states_close(measured)


def test_chunks_put_every_log_checkpoint_and_eval_step_between_calls():
  config = tiny_config(steps_per_jit=4, num_train_steps=12, log_every_steps=5,
                       checkpoint_every_steps=10, eval_every_steps=10)
  step, chunks = 0, []
  while step < config.num_train_steps:
    chunks.append(train.chunk_length(step, config))
    step += chunks[-1]
  assert chunks == [4, 1, 4, 1, 1, 1]  # boundaries 5, 10 and the end, 12
  config.log_every_steps = 4  # multiples of steps_per_jit: no single steps at all
  config.checkpoint_every_steps = config.eval_every_steps = 8
  assert [train.chunk_length(s, config) for s in (0, 4, 8)] == [4, 4, 4]
  assert train.chunk_length(3, config) == 1  # resumed after a SIGTERM save at step 3


@pytest.mark.parametrize("value", [0, -2])
def test_steps_per_jit_below_one_fails_before_compiling(value, tmp_path):
  with pytest.raises(config_validation.ConfigError,
                     match=f"^config.steps_per_jit={value!r} is invalid: must be an integer "
                           ">= 1 .*$"):
    train.train_and_evaluate(run_config(tmp_path, steps_per_jit=value), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()  # nothing touched, nothing compiled


@pytest.mark.parametrize("module", configs.NAMES[1:])  # all but default
def test_configs_take_a_variant(module):
  get_config = functools.partial(configs.get_config, module)
  config = get_config("supervised,fixed")
  assert (config.model.condition, config.model.prior) == ("supervised", "fixed")
  config_validation.validate_config(config)
  assert get_config().model.condition == "none" and get_config().model.prior == "learned"
  with pytest.raises(ValueError, match="Unknown config variant 'semi'"):
    get_config("semi")


def test_batch_size_must_divide_over_devices(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 8)
  with pytest.raises(config_validation.ConfigError,
                     match="config.batch_size=12 .* divisible by the number of devices \\(8\\)"):
    train.create_mesh_shardings(tiny_config(batch_size=12))


def test_labels_outside_the_classes_are_rejected():
  train.check_labels(np.array([0, 9]), 10, step=0)
  with pytest.raises(ValueError, match="step 3 has labels in \\[0, 10\\].*\\[0, 10\\)"):
    train.check_labels(np.array([0, 10]), 10, step=3)


def test_training_ends_with_the_full_evaluation(finished_run):
  config, workdir, _ = finished_run
  metrics = json.loads((workdir / "eval" / "step_4" / "metrics.json").read_text())
  assert metrics["step"] == 4 and "kmeans_nmi" in metrics
  assert metrics["provenance"]["config"] == json.loads(
      provenance.config_to_json(config))["config"]
  assert {"jax", "flax", "orbax-checkpoint"} <= set(metrics["provenance"]["package_versions"])
  assert metrics["provenance"]["devices"]["device_count"] == jax.device_count()
  # The latest evaluation's copy, which experiments/run_utils.py reads.
  assert json.loads((workdir / "eval" / "metrics.json").read_text()) == metrics


def test_a_restored_checkpoint_is_ready_for_inference(finished_run):
  # Reconstructions from the public restore match the evaluation's; from the raw checkpoint
  # (training's running BatchNorm averages) they do not.
  _, workdir, _ = finished_run
  metrics = json.loads((workdir / "eval" / "step_4" / "metrics.json").read_text())
  with tfds.testing.mock_data(num_examples=64):
    states, config = lpaae_jax.restore_for_inference(str(workdir))
    images, _ = evaluate.real_eval_data(config)
  mse = float(np.mean(np.square(lpaae_jax.reconstruct(states, images) - images)))
  np.testing.assert_allclose(mse, metrics["reconstruction_mse"], rtol=1e-4)
  raw, _ = checkpointing.restore_latest(config, str(workdir))
  raw_mse = float(np.mean(np.square(lpaae_jax.reconstruct(raw, images) - images)))
  assert abs(raw_mse - mse) > 1e-3 * mse


def test_evaluate_command_restores_the_run_and_writes_metrics_and_figures(finished_run,
                                                                          tmp_path):
  # Without a config (the evaluator's --config omitted): the run's stored one.
  config, run_workdir, _ = finished_run
  workdir = tmp_path / "copy"
  shutil.copytree(run_workdir / "checkpoints", workdir / "checkpoints")
  shutil.copyfile(run_workdir / "config.json", workdir / "config.json")
  with tfds.testing.mock_data(num_examples=64):
    results = evaluate.evaluate_workdir(None, str(workdir), num_samples=20)
  assert results["provenance"]["config"]["model"]["width"] == config.model.width
  for eval_dir in (workdir / "eval" / "step_4", workdir / "eval"):  # per step, and latest
    assert json.loads((eval_dir / "metrics.json").read_text())["num_samples"] == 20
    for png in ("samples_grid.png", "reconstructions.png", "tsne.png"):
      assert (eval_dir / png).stat().st_size > 0
  assert results["step"] == 4 and np.isfinite(results["reconstruction_mse"])
  assert 0 <= results["kmeans_nmi"] <= 1
  assert "eval/samples_grid" in event_tags(workdir)["images"]
