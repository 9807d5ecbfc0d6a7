"""What every experiment command does with one run: train (resuming), evaluate, skip if done.

A run is finished when `WORKDIR/eval/metrics.json` holds the evaluation of step
`config.num_train_steps`; `run_info.json` next to it records the wall times (summed over
resumptions) and, for a run that diverged, the error. Re-running an experiment command
after an interruption therefore redoes nothing that finished. A workdir may not outlive a
session; the committed results do, and `recorded_run` tells whether one of their records
is the evaluation of what a config trains, so that a new machine does not train it again.
"""

import json
import os
import time
from typing import Any, Optional

from absl import logging
import ml_collections

from lpaae_jax.configs import default
from lpaae_jax import checkpointing
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax import provenance
from lpaae_jax import train

RUN_INFO = "run_info.json"


class RunInterrupted(RuntimeError):
  """Training stopped before its last step (SIGTERM): the command stops, a re-run resumes."""


def read_json(path: str) -> Optional[Any]:
  try:
    with open(path, encoding="utf-8") as json_file:
      return json.load(json_file)
  except (OSError, ValueError):
    return None


write_json = file_utils.write_json


def relative_paths(value, start: Optional[str] = None):
  """`value` (a run's record) with every absolute path of an existing file or directory,
  whole strings or words of a message, made relative to `start` (default: the working
  directory), so that committed results name the judge, weights and data as the command
  did, not this machine's layout."""
  if isinstance(value, dict):
    return {key: relative_paths(item, start) for key, item in value.items()}
  if isinstance(value, list):
    return [relative_paths(item, start) for item in value]
  if isinstance(value, str):
    relative = lambda word: (os.path.relpath(word, start)
                             if os.path.isabs(word) and os.path.exists(word) else word)
    if relative(value) != value:  # the whole string (which may hold spaces)
      return relative(value)
    return " ".join(relative(word) for word in value.split(" "))
  return value


def finished_run(config: ml_collections.ConfigDict, workdir: str) -> Optional[dict[str, Any]]:
  """run_once's record of a run evaluated at its last step or diverged; None otherwise."""
  results = read_json(os.path.join(workdir, "eval", evaluate.METRICS_FILE))
  info = read_json(os.path.join(workdir, RUN_INFO))
  if results and info and results.get("step") == config.num_train_steps:
    return {"metrics": results, **info}
  if info and info.get("diverged"):
    return {"metrics": {}, **info}
  return None


# Where a run's files are, not what it computes: a record made on another machine matches.
PATH_FIELDS = frozenset({"data_dir", "eval.inception_weights", "eval.judge_path",
                         "eval.stats_cache_dir"})

# How a run executes, not what it trains: iterations fused into one compiled call train the
# same model up to float reassociation.
EXECUTION_FIELDS = frozenset({"steps_per_jit"})


def _value(tree: dict, field: str):
  for part in field.split("."):
    tree = tree.get(part) if isinstance(tree, dict) else None
  return tree


def _added_since(made_by: dict, config: ml_collections.ConfigDict, field: str) -> bool:
  """Whether `field` is one the code that made the record did not have yet, left at
  configs/default.py's value: a new field's default keeps the model as it was."""
  node = made_by
  for part in field.split("."):
    if not isinstance(node, dict) or part not in node:
      break
    node = node[part]
  else:
    return False
  value, default_value = config, default.get_config()
  for part in field.split("."):
    value, default_value = value.get(part), default_value.get(part)
  return value == default_value


def recorded_run(record: Optional[dict], config: ml_collections.ConfigDict
                 ) -> Optional[dict[str, Any]]:
  """`record` (a committed results.json's entry of one run) if it holds the evaluation of
  what `config` trains: at its last step, with the same config up to paths, to fields
  added since at their defaults and fields retired since at their neutral values, at any
  steps_per_jit. None otherwise."""
  metrics = (record or {}).get("metrics", {})
  made_by = metrics.get("provenance", {}).get("config")
  if made_by is None or metrics.get("step") != config.num_train_steps:
    return None
  differences = (set(provenance.recorded_differences(made_by, config)) - PATH_FIELDS
                 - EXECUTION_FIELDS)
  unchanged = (lambda field: _added_since(made_by, config, field)
               or config_validation.retired_without_effect(field, _value(made_by, field)))
  return record if all(map(unchanged, differences)) else None


def run_once(config: ml_collections.ConfigDict, workdir: str, *,
             judge_path: Optional[str] = None) -> dict[str, Any]:
  """Trains (or resumes) and evaluates one run -> {"metrics": metrics.json, timings...}.

  A finished run is read back, not redone. A run whose losses became non-finite is recorded
  with "diverged" (and empty metrics) instead of stopping the experiment.
  """
  finished = finished_run(config, workdir)
  if finished is not None:
    reason = (f"it diverged ({finished['diverged']})" if finished.get("diverged")
              else f"evaluated at step {finished['metrics']['step']}")
    logging.info("Skipping %s: %s.", workdir, reason)
    return finished

  info_path = os.path.join(workdir, RUN_INFO)
  info = read_json(info_path) or {"train_seconds": 0.0}
  start = time.time()
  try:
    train.train_and_evaluate(config, workdir)
  except train.NonFiniteLossError as error:
    # A diverged run is a result too: reported in the table, left out of the means.
    info["diverged"] = str(error)
  info["train_seconds"] += time.time() - start  # summed over resumptions
  write_json(info_path, info)
  if info.get("diverged"):
    return {"metrics": {}, **info}

  start = time.time()
  states, step = checkpointing.restore_latest(config, workdir)  # the saved final states
  if step < config.num_train_steps:
    raise RunInterrupted(f"{workdir} stopped at step {step} of {config.num_train_steps} "
                         "(SIGTERM); run the same command again to resume.")
  # Into eval/step_<step>/, copied to eval/ (the metrics.json read above).
  results = evaluate.evaluate_run(config, states, workdir, step, judge_path=judge_path)
  info["eval_seconds"] = time.time() - start
  write_json(info_path, info)
  return {"metrics": results, **info}
