"""One Orbax checkpoint per saved step holding every state, the step and run metadata.

The input pipeline's position is a pure function of (seed, step) (see input_pipeline), so
the step is all a resumed run needs to see the batches an uninterrupted run would have.
The metadata records the dataset and the model spec; restoring into another dataset or model
stops with an error naming the mismatched field instead of failing inside Orbax or
overwriting the run.
"""

import contextlib
import dataclasses
import errno
import functools
import os
import time
from typing import Any, Optional

import jax
from jax.experimental import multihost_utils
from absl import logging
import ml_collections
import orbax.checkpoint as ocp

from lpaae_jax import config_validation
from lpaae_jax import errors
from lpaae_jax import models
from lpaae_jax import states as states_lib

CHECKPOINT_DIR = "checkpoints"


class CheckpointMismatchError(errors.LpaaeError, ValueError):
  """The workdir's checkpoint was written by an incompatible config."""


class NoUsableCheckpointError(errors.LpaaeError, RuntimeError):
  """The workdir has checkpoints but none of them can be restored."""


class NoCheckpointError(errors.LpaaeError, FileNotFoundError):
  """The workdir has no checkpoint to evaluate (or restore)."""


class DiskFullError(errors.LpaaeError, OSError):
  """The workdir's filesystem is full: the run's files (summaries, ...) cannot be written."""


class CheckpointSaveError(DiskFullError):
  """A checkpoint could not be written because its filesystem is full."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


def create_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=config.max_to_keep,
                                         enable_async_checkpointing=True, create=True)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def run_metadata(config: ml_collections.ConfigDict, step: int) -> dict[str, Any]:
  spec = models.ModelSpec.from_config(config)
  return {"step": int(step), "seed": int(config.seed), "dataset": config.dataset,
          "batch_size": int(config.batch_size),
          # The fast paths change how the networks compute, not their function or
          # parameters: a run trained with them restores without them (e.g. on a GPU).
          "model_spec": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in dataclasses.asdict(spec).items()
                         if k != "backend"}}


def save(manager: ocp.CheckpointManager, step: int, states: states_lib.States,
         config: ml_collections.ConfigDict) -> None:
  """Starts an (asynchronous) save of every state at `step` (completed iterations).

  Raises CheckpointSaveError when this save, or the previous one still in the
  background, finds its filesystem full.
  """
  with _reporting_full_disk(manager):
    manager.save(step, args=ocp.args.Composite(
        states=ocp.args.StandardSave(states),
        meta=ocp.args.JsonSave(run_metadata(config, step))))
  logging.info("Saving the checkpoint of step %d in %s.", step, manager.directory)


def wait_until_saved(manager: ocp.CheckpointManager) -> None:
  """Waits for the background save, if any; CheckpointSaveError when the disk filled up."""
  saving = manager.is_saving_in_progress()
  with _reporting_full_disk(manager):
    manager.wait_until_finished()
  if saving:
    logging.info("Saved the checkpoint of step %s in %s.", manager.latest_step(),
                 manager.directory)


# Orbax writes through TensorStore, whose errors are ValueErrors carrying the OS error in
# their text ("RESOURCE_EXHAUSTED: ... No space left on device [os_error_code='28']").
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_out_of_space(error: BaseException) -> bool:
  """Whether `error`, or an error it was raised from, says the filesystem is full."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _OUT_OF_SPACE:
      return True
    text = str(error)
    if any(os.strerror(code) in text or f"os_error_code='{code}'" in text
           for code in _OUT_OF_SPACE):
      return True
    error = error.__cause__ or error.__context__
  return False


def _newest_committed_step(directory: str) -> Optional[int]:
  """From the directory listing alone (a failed manager may not answer): Orbax commits a
  save by renaming its temporary directory to the step number."""
  try:
    steps = [int(name) for name in os.listdir(directory) if name.isdigit()]
  except OSError:
    return None
  return max(steps, default=None)


def full_disk_error(workdir: str, writing: str,
                    error_class=DiskFullError) -> DiskFullError:
  """The one-line error for a full disk while `writing` (e.g. "a checkpoint"): what the
  rerun resumes from, and the fix."""
  directory = checkpoint_dir(workdir)
  step = _newest_committed_step(directory)
  kept = ("no checkpoint is complete yet, so the rerun starts over" if step is None else
          f"the newest complete checkpoint, {os.path.join(directory, str(step))} (step "
          f"{step}), is intact and the rerun resumes from it")
  return error_class(f"No space left on the device of {directory} while writing {writing}: "
                     f"{kept}. Free space there (or move the workdir to a larger disk) and "
                     "rerun the same command.")


@contextlib.contextmanager
def reporting_full_disk(workdir: str, writing: str, error_class=DiskFullError):
  """Turns an out-of-space failure inside the block into one `full_disk_error`; our own
  errors, and any error raised while handling one, pass through (the commands show ours)."""
  try:
    yield
  except Exception as error:  # pylint: disable=broad-except  (re-raised unless out of space)
    if errors.innermost(error) is not None or not is_out_of_space(error):
      raise
    raise full_disk_error(workdir, writing, error_class) from error


def _reporting_full_disk(manager: ocp.CheckpointManager):
  workdir = os.path.dirname(os.fspath(manager.directory))
  return reporting_full_disk(workdir, "a checkpoint", CheckpointSaveError)


def abstract_states(config: ml_collections.ConfigDict, sharding=None) -> states_lib.States:
  """The states' shapes and dtypes (no compute), placed by `sharding` when given."""
  spec = models.ModelSpec.from_config(config)
  init = functools.partial(states_lib.init_states, spec, states_lib.make_optimizers(config))
  shapes = jax.eval_shape(init, jax.random.key(0))
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


# Model-spec fields of options since retired (config_validation.RETIRED_FIELDS), each with
# the saved value under which a checkpoint holds what this code builds.
_RETIRED_SPEC_FIELDS = {
    "label_tie": lambda saved: "both" if saved.get("condition") == "supervised" else "none",
    "image_disc_norm": lambda saved: "batch",
    "image_disc_width": lambda saved: 0,
}


def check_compatible(meta: dict[str, Any], config: ml_collections.ConfigDict,
                     directory: str, holding: str = "holds a checkpoint of") -> None:
  """Raises CheckpointMismatchError naming the dataset, or else the first model field, that
  differs between `meta` (`run_metadata` of the run that wrote `directory`) and `config`.

  `holding` words what `directory` is ("holds a checkpoint of", or for a stored config
  "records"): the message reads "<directory> <holding> a run with dataset='svhn', ..."."""
  fix = ("rerun with the run's original config (the evaluator uses the workdir's stored "
         "config.json when --config is omitted) or use another --workdir.")
  saved_dataset = meta.get("dataset")
  if saved_dataset is not None and saved_dataset != config.dataset:
    raise CheckpointMismatchError(
        f"{directory} {holding} a run with dataset={saved_dataset!r}, but this config has "
        f"dataset={config.dataset!r}: {fix}")
  expected = run_metadata(config, 0)["model_spec"]
  saved = meta.get("model_spec", {})
  for field, neutral in _RETIRED_SPEC_FIELDS.items():
    if field in saved and saved[field] != neutral(saved):
      commit = config_validation.RETIRED_FIELDS[f"model.{field}"].last_commit
      raise CheckpointMismatchError(
          f"{directory} {holding} a model with model.{field}={saved[field]!r}, an option "
          f"retired after commit {commit}: check out that commit to use this run.")
  for field, value in expected.items():
    if field in saved and saved[field] != value:
      config_field = "compute_dtype" if field == "compute_dtype" else f"model.{field}"
      raise CheckpointMismatchError(
          f"{directory} {holding} a model with {config_field}={saved[field]!r}, "
          f"but this config has {config_field}={value!r}: {fix}")


def restore(manager: ocp.CheckpointManager, config: ml_collections.ConfigDict,
            step: Optional[int] = None, sharding=None) -> tuple[states_lib.States, int]:
  """Restores the states at `step` (default: latest) after checking the model matches."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise NoCheckpointError(f"No checkpoint in {manager.directory}: train first with "
                            "python -m lpaae_jax.main --config=... --workdir=...")
  meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
  check_compatible(meta, config, str(manager.directory))
  restored = manager.restore(step, args=ocp.args.Composite(
      states=ocp.args.StandardRestore(abstract_states(config, sharding))))
  return restored.states, int(step)


def restore_newest_usable(manager: ocp.CheckpointManager, config: ml_collections.ConfigDict,
                          sharding=None) -> Optional[tuple[states_lib.States, int]]:
  """(states, step) of the newest checkpoint that restores; None for a fresh workdir.

  A damaged checkpoint (truncated or corrupted files) logs a warning, is moved to
  `<workdir>/checkpoints_unusable/` (so the run can save that step again; nothing is
  deleted) and the previous one is tried. Orbax commits a save by renaming its temporary
  directory, so a save that was interrupted never appears among the steps. A config
  mismatch or a bad config value is raised at once.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  failures = []
  for step in steps:
    try:
      restored = restore(manager, config, step, sharding)
    except errors.LpaaeError:  # the config does not fit (mismatch, bad value): not damage
      raise
    except Exception as error:  # pylint: disable=broad-except  # any damage: try an older one
      logging.warning("Checkpoint of step %d in %s is unusable (%s: %s); trying the previous "
                      "one.", step, manager.directory, type(error).__name__,
                      errors.first_line(error))
      failures.append(f"step {step}: {type(error).__name__}")
      continue
    if failures:
      _move_unusable(manager, [s for s in steps if s > step])
    return restored
  if not steps:
    return None
  raise NoUsableCheckpointError(
      f"No usable checkpoint in {manager.directory} ({'; '.join(failures)}): move it away, "
      "or rerun with --config.reinit=True to set it aside and start over.")


def _move_unusable(manager: ocp.CheckpointManager, steps: list[int]) -> None:
  directory = os.fspath(manager.directory)
  # Process 0 moves them (hosts share the directory: one rename each, not one per host);
  # every process waits for that before reloading its view of the steps.
  if jax.process_index() == 0:
    target_root = os.path.join(os.path.dirname(directory), CHECKPOINT_DIR + "_unusable")
    os.makedirs(target_root, exist_ok=True)
    for step in steps:
      target = os.path.join(target_root, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
      os.rename(os.path.join(directory, str(step)), target)
      logging.warning("Moved the unusable checkpoint of step %d to %s.", step, target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("lpaae_jax: unusable checkpoints moved")
  manager.reload()


def set_aside(workdir: str) -> str:
  """Renames the workdir's checkpoint directory (nothing is deleted); returns the new path."""
  source = checkpoint_dir(workdir)
  target = f"{source}.unusable-{time.strftime('%Y%m%d-%H%M%S')}"
  os.rename(source, target)
  logging.warning("Moved the unusable checkpoints %s to %s (config.reinit=True).", source,
                  target)
  return target


def restore_latest(config: ml_collections.ConfigDict, workdir: str,
                   sharding=None) -> tuple[states_lib.States, int]:
  """(states, step) of the workdir's latest checkpoint, as training left them (to resume or
  evaluate); for inference `evaluate.restore_for_inference` recalibrates BatchNorm first."""
  if not os.path.isdir(checkpoint_dir(workdir)):  # the manager would create it
    raise NoCheckpointError(f"No checkpoint in {checkpoint_dir(workdir)}: train first with "
                            "python -m lpaae_jax.main --config=... --workdir=..., or check "
                            "--workdir.")
  manager = create_manager(workdir, config)
  try:
    restored = restore_newest_usable(manager, config, sharding)
  finally:
    manager.close()
  if restored is None:
    raise NoCheckpointError(f"No checkpoint in {checkpoint_dir(workdir)}: train first with "
                            "python -m lpaae_jax.main --config=... --workdir=...")
  return restored
