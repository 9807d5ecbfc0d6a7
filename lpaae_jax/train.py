"""The training loop: both phases of Algorithm 1 on every batch, with logging, image
summaries, checkpoints and exact resume.

`train_and_evaluate(config, workdir)` restores the workdir's latest checkpoint or
initialises, so rerunning the same command resumes. Batches and per-step keys are pure
functions of (seed, step), so a resumed run computes what an uninterrupted one would. The
resolved config is written to `WORKDIR/config.json` at the start (lpaae_jax.provenance).
"""

import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers
from clu import periodic_actions
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

import lpaae_jax
from lpaae_jax import backend
from lpaae_jax import checkpointing
from lpaae_jax import config_validation
from lpaae_jax import errors
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax import input_pipeline
from lpaae_jax import provenance
from lpaae_jax import train_steps
from lpaae_jax.evaluation import artifacts, figures
from lpaae_jax.states import States


class NonFiniteLossError(errors.LpaaeError, FloatingPointError):
  """A loss became NaN or Inf; the last checkpoint is kept as the latest."""


class WorkdirError(errors.LpaaeError, OSError):
  """The workdir cannot be created or written."""


def check_workdir_writable(workdir: str) -> bool:
  """Fails at start, not hours later inside Orbax, when the workdir cannot be written;
  whether it created the workdir."""
  file_utils.check_local_workdir(workdir)
  created = not os.path.exists(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
    # One probe per process: hosts sharing the workdir must not remove each other's.
    probe = os.path.join(workdir, f".write_probe.{jax.process_index()}")
    with open(probe, "wb") as f:
      f.write(b"\0" * 4096)
    os.remove(probe)
  except OSError as error:
    raise WorkdirError(f"--workdir={workdir} is not writable ({error.strerror or error}): "
                       "choose a directory you can write to with free space.") from None
  return created


def create_mesh_shardings(config: ml_collections.ConfigDict):
  """A 1-D `data` mesh over all devices: states replicated, batches split on axis 0."""
  num_devices = jax.device_count()
  if config.batch_size % num_devices:
    raise config_validation.ConfigError(
        f"config.batch_size={config.batch_size} is invalid: it must be divisible by the "
        f"number of devices ({num_devices}).")
  mesh = jax.make_mesh((num_devices,), ("data",))
  return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))


def check_labels(labels: np.ndarray, num_classes: int, step: int) -> None:
  """Labels index one-hot codes and the Q head; out-of-range ones would be silently clipped
  by XLA's gather, so they are rejected on the host before the step runs."""
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise config_validation.ConfigError(
        f"Batch of step {step} has labels in [{labels.min()}, {labels.max()}]; "
        f"config.model.num_classes={num_classes} needs them in [0, {num_classes}).")


def stack_to_host(step_metrics: list[dict[str, jax.Array]]) -> dict[str, np.ndarray]:
  """Per-step metrics as host arrays (num_steps,): one transfer per logging interval.

  Each entry holds one step's scalars or a fused call's metrics stacked (k,)."""
  return jax.device_get({k: jnp.concatenate([jnp.atleast_1d(m[k]) for m in step_metrics])
                         for k in step_metrics[0]})


def make_loop_steps(config: ml_collections.ConfigDict, state_sharding,
                    batch_sharding) -> train_steps.TrainSteps:
  """The jitted steps as the loop runs them. On one device no shardings are passed, so the
  loop shares compilations with plain `make_train_steps(config)` callers."""
  if jax.device_count() == 1:
    state_sharding = batch_sharding = None
  return train_steps.make_train_steps(config, state_sharding=state_sharding,
                                      batch_sharding=batch_sharding)


def chunk_length(step: int, config: ml_collections.ConfigDict) -> int:
  """Iterations the loop runs in its next call, starting after `step` completed ones.

  config.steps_per_jit when the next log, checkpoint, eval or the end is that far away,
  else 1: every boundary falls between calls, so the loop logs, saves and evaluates at
  the steps it would run step by step, for any interval (intervals that are multiples of
  steps_per_jit never need single steps). Depends on `step` only, so a resumed run makes
  the calls an uninterrupted one makes from there.
  """
  k = config.steps_per_jit
  intervals = (config.log_every_steps, config.checkpoint_every_steps, config.eval_every_steps)
  next_boundary = min([config.num_train_steps] + [(step // n + 1) * n for n in intervals])
  return k if next_boundary - step >= k else 1


def stack_batches(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """k host batches stacked on a new leading axis, as the fused call takes them."""
  return {key: np.stack([batch[key] for batch in batches]) for key in batches[0]}


def summarize(stacked: dict[str, np.ndarray]) -> dict[str, float]:
  """Means of per-step metrics; skipped steps (config.on_nonfinite='skip') are counted and
  their NaN losses left out."""
  summary = {}
  for name, values in stacked.items():
    finite = values[np.isfinite(values)]
    if name.endswith("/skipped"):
      summary[name] = float(np.sum(values))
    elif finite.size:
      summary[name] = float(np.mean(finite))
  return summary


_all_finite = jax.jit(train_steps.all_finite)


def check_finite(stacked: dict[str, np.ndarray], first_step: int) -> None:
  """Raises NonFiniteLossError naming the phase, step and loss term of the first NaN/Inf."""
  num_steps = len(next(iter(stacked.values()), []))
  for offset in range(num_steps):
    for name, values in sorted(stacked.items()):
      if not np.isfinite(values[offset]):
        phase, term = name.split("/", 1)
        raise NonFiniteLossError(
            f"Non-finite {term} = {values[offset]} in the {phase} phase at step "
            f"{first_step + offset}; the latest checkpoint holds the last good states. Try a "
            "lower optim.learning_rate.")


class _TerminationRequest:
  """Turns SIGTERM (sent before preemption) into a save-and-exit after the current step.

  One process: a SIGTERM handler of ours sets a flag. Several: JAX's preemption sync
  manager, which `jax.distributed.initialize()` sets up and which handles SIGTERM itself
  (a handler of ours would replace its), names a step at which every host stops
  (`multihost_utils.reached_preemption_sync_point`), so all of them save the same step
  and none waits in the collective save for the others.
  """

  def __init__(self):
    self.requested = False
    self._previous = None
    self._multihost = jax.process_count() > 1

  def __enter__(self):
    if self._multihost:
      return self
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: leave signals alone
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint and exiting.")
    self.requested = True

  def stop_after(self, step: int) -> bool:
    """Whether to save and stop after `step`; every process calls it at every step it
    completes (increasing steps), whether or not it was signalled."""
    if self._multihost and not self.requested:
      self.requested = multihost_utils.reached_preemption_sync_point(step)
      if self.requested:
        logging.warning("A host was preempted: every host saves step %d and exits.", step)
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def write_image_summaries(writer, step: int, states, grid_key, eval_images, config,
                          recalibration_batches=()) -> None:
  """Sample grid, reconstruction pairs, the pixel MSE of the reconstructions of
  `eval_images` and the artefact ratios (`evaluation.artifacts`) of as many samples and of
  those reconstructions, with the BatchNorm statistics evaluation uses (recalibrated on
  `recalibration_batches` when given)."""
  states, reconstructing = evaluate.inference_states(config, states, recalibration_batches)
  samples = figures.figure3_grid(states, grid_key, rows=config.num_grid_rows)
  reconstructions = np.asarray(lpaae_jax.reconstruct(reconstructing, eval_images))
  shown = config.num_reconstructions
  pairs = figures.reconstruction_pairs(reconstructing, eval_images[:shown],
                                       reconstructions=reconstructions[:shown])
  writer.write_images(step, {"samples": samples[None], "reconstructions": pairs[None]})
  prior_samples = np.asarray(lpaae_jax.sample(states, jax.random.fold_in(grid_key, 1),
                                              len(eval_images)))
  scalars = {"eval/pixel_rec_mse": float(np.mean((reconstructions - eval_images)**2))}
  for prefix, images in (("sample", prior_samples), ("reconstruction", reconstructions)):
    if np.all(np.isfinite(images)):
      scalars.update({f"eval/{prefix}_{name}": value for name, value in
                      artifacts.artifact_ratios(images, eval_images).items()})
  writer.write_scalars(step, scalars)


def restore_or_initialize(config: ml_collections.ConfigDict, workdir: str, state_sharding,
                          writer) -> tuple[Any, States, int]:
  """(checkpoint manager, states, start step): the workdir's newest usable checkpoint, or
  fresh states at step 0 (also after `config.reinit` set unusable checkpoints aside).

  A resumed run's stored config must describe the same model and dataset."""
  manager = checkpointing.create_manager(workdir, config)
  if manager.all_steps():
    try:
      provenance.check_stored_config(workdir, config)
    except errors.LpaaeError:
      manager.close()
      raise
  try:
    restored = checkpointing.restore_newest_usable(manager, config, state_sharding)
  except checkpointing.NoUsableCheckpointError:
    if not config.reinit:
      raise
    manager.close()
    if jax.process_index() == 0:  # one rename, not one per host
      checkpointing.set_aside(workdir)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("lpaae_jax: checkpoints set aside")
    manager = checkpointing.create_manager(workdir, config)
    restored = None
  if restored is not None:
    states, start_step = restored
    logging.info("Resumed from the checkpoint of step %d in %s.", start_step, workdir)
    return manager, states, start_step
  init_key = jax.random.split(jax.random.key(config.seed), 3)[0]
  writer.write_hparams(_flatten(config.to_dict()))
  return manager, lpaae_jax.create_states(config, init_key, state_sharding), 0


def next_batches(train_iter, num_steps: int, config: ml_collections.ConfigDict,
                 first_step: int) -> list[dict[str, np.ndarray]]:
  """This process's next `num_steps` batches, their labels checked."""
  batches = [next(train_iter) for _ in range(num_steps)]
  for offset, batch in enumerate(batches):
    check_labels(batch["label"], config.model.num_classes, first_step + offset)
  return batches


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> States:
  """Trains for config.num_train_steps iterations (resuming if the workdir has a
  checkpoint) and returns the final states."""
  # --- Checks, before anything is compiled or written.
  config_validation.validate_config(config)
  created = check_workdir_writable(workdir)
  try:
    input_pipeline.check_dataset_available(config)
  except Exception:
    if created and not os.listdir(workdir):
      os.rmdir(workdir)  # a failed start leaves no empty workdir behind
    raise
  state_sharding, batch_sharding = create_mesh_shardings(config)
  backend.from_config(config).configure_process()

  # --- States, steps and data.
  writer = metric_writers.create_default_writer(workdir,
                                                just_logging=jax.process_index() > 0)
  manager, states, start_step = restore_or_initialize(config, workdir, state_sharding,
                                                      writer)
  if jax.process_index() == 0:  # hosts share the workdir: one writer
    provenance.write_config(workdir, config, start_step)
  _, train_key, grid_key = jax.random.split(jax.random.key(config.seed), 3)
  steps = make_loop_steps(config, state_sharding, batch_sharding)
  train_iter = input_pipeline.create_train_iterator(config, start_step=start_step,
                                                    end_step=config.num_train_steps)
  # The summaries' real images: the first shown as reconstructions, all in the ratios.
  eval_images, _ = input_pipeline.load_split_arrays(
      config, config.eval_split, num=max(config.num_reconstructions, config.num_summary_images))
  recalibration_batches = evaluate.recalibration_batches(config)
  hooks = []
  if jax.process_index() == 0:
    hooks.append(periodic_actions.ReportProgress(num_train_steps=config.num_train_steps,
                                                 writer=writer,
                                                 every_steps=config.log_every_steps))
    if config.profile_num_steps > 0:
      hooks.append(periodic_actions.Profile(num_profile_steps=config.profile_num_steps,
                                            logdir=workdir))

  # --- The loop: each call runs one iteration (both phases) or config.steps_per_jit.
  pending: list[dict[str, jax.Array]] = []
  pending_start, interval_start = start_step, time.perf_counter()
  step = start_step
  logging.info("Training from step %d to %d; the first call compiles the steps first (up to "
               "minutes on an accelerator, nothing is logged meanwhile).", start_step,
               config.num_train_steps)
  # A full disk ends the run with one line saying what the rerun resumes from.
  with checkpointing.reporting_full_disk(workdir, "the summaries or evaluation files"):
    try:
      with _TerminationRequest() as termination:
        while step < config.num_train_steps:
          num_steps = chunk_length(step, config)
          local_batches = next_batches(train_iter, num_steps, config, step)
          with jax.profiler.StepTraceAnnotation("train", step_num=step):
            if num_steps == 1:
              batch = jax.make_array_from_process_local_data(batch_sharding, local_batches[0])
              aae_key, prior_key = train_steps.iteration_keys(train_key, step)
              states, aae_metrics = steps.aae_phase(states, batch, aae_key)
              states, prior_metrics = steps.prior_phase(states, batch, prior_key)
              metrics = {**aae_metrics, **prior_metrics}
            else:
              batches = jax.make_array_from_process_local_data(
                  train_steps.stacked_sharding(batch_sharding), stack_batches(local_batches))
              states, metrics = steps.iterations(states, batches, train_key, step)
          pending.append(metrics)
          done = step + num_steps
          for hook in hooks:  # clu's periodic actions expect a call per step
            for hook_step in range(step + 1, done + 1):
              hook(hook_step)
          step = done

          # --- Logs, image summaries and checkpoints at their intervals.
          last = done == config.num_train_steps
          stop = termination.stop_after(done)
          save_now = last or stop or done % config.checkpoint_every_steps == 0
          if save_now or done % config.log_every_steps == 0:
            stacked = stack_to_host(pending)
            if config.on_nonfinite == "stop":
              check_finite(stacked, pending_start)
            summary = summarize(stacked)
            elapsed = time.perf_counter() - interval_start
            summary["images_per_sec"] = (done - pending_start) * config.batch_size / elapsed
            writer.write_scalars(done, summary)
            pending, pending_start, interval_start = [], done, time.perf_counter()
          if last or done % config.eval_every_steps == 0:
            write_image_summaries(writer, done, states, grid_key, eval_images, config,
                                  recalibration_batches)
          if save_now:
            if not _all_finite(states):  # never let a NaN parameter become the latest checkpoint
              raise NonFiniteLossError(f"Non-finite parameters after step {done}; the latest "
                                       "checkpoint holds the last good states.")
            checkpointing.save(manager, done, states, config)
          if stop:
            logging.info("Stopping at step %d after SIGTERM.", done)
            break
    finally:
      # Lets an in-flight asynchronous save finish (also when a NaN or an error stops us), and
      # closes the manager even when that save failed: its threads must not outlive the run.
      try:
        checkpointing.wait_until_saved(manager)
      finally:
        manager.close()
        writer.flush()

    # --- The full evaluation, if asked for.
    trained = start_step < config.num_train_steps and not termination.requested
    if config.eval.full_eval_at_end and trained:
      evaluate.evaluate_run(config, states, workdir, config.num_train_steps, writer=writer)
  return states


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, name + "."))
    else:
      flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
  return flat
