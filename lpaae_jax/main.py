"""Trains an LPAAE model.

  python -m lpaae_jax.main --config=configs/mnist.py:supervised --workdir=runs/mnist

Rerunning the same command resumes from the workdir's latest checkpoint. Any config field
can be overridden, e.g. `--config.batch_size=128 --config.model.prior=fixed`.

Several hosts: start the same command on every host. `--multihost=auto` (default) calls
`jax.distributed.initialize()` when the environment describes a multi-process job (see
`multihost_environment`); `--multihost=on` always calls it (e.g. a Cloud TPU pod on GCE,
which JAX recognises from its metadata server rather than the environment), `off` never.

An error we raise on purpose (a bad config value, missing data, a full disk, ...) ends the
command with its one-line message; `--verbose` shows its traceback and every library's INFO
log lines (see lpaae_jax.cli).
"""

import os
from typing import Mapping, Optional

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import tensorflow as tf

from lpaae_jax import cli
from lpaae_jax import train

FLAGS = flags.FLAGS
MULTIHOST_MODES = ("auto", "on", "off")


def _define_flags() -> None:
  # Only when run as a command: importing this module (e.g. in tests) must not claim
  # global flag names (`--config` is also the evaluator's and the benchmark's).
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and TensorBoard logs.")
  config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                  lock_config=True)
  flags.DEFINE_enum("multihost", "auto", MULTIHOST_MODES,
                    "Call jax.distributed.initialize(): auto = when the environment "
                    "describes a multi-process job, on = always, off = never.")
  flags.mark_flags_as_required(["config", "workdir"])


def _int(environ: Mapping[str, str], name: str) -> int:
  try:
    return int(environ.get(name, ""))
  except ValueError:
    return 0


def multihost_environment(environ: Mapping[str, str]) -> Optional[str]:
  """The launcher whose variables describe a job of several processes, or None.

  These are the environments `jax.distributed.initialize()` configures itself from
  (besides JAX_COORDINATOR_ADDRESS, which the user sets with JAX_NUM_PROCESSES and
  JAX_PROCESS_ID), restricted to jobs of more than one process: a single-process run
  (a laptop, one GPU box, a Colab TPU) needs no coordinator and must not wait for one.
  """
  if environ.get("JAX_COORDINATOR_ADDRESS"):
    return "JAX_COORDINATOR_ADDRESS"
  if _int(environ, "SLURM_NTASKS") > 1 and "SLURM_STEP_NODELIST" in environ:
    return "Slurm"
  if _int(environ, "OMPI_COMM_WORLD_SIZE") > 1 and "OMPI_MCA_orte_hnp_uri" in environ:
    return "Open MPI"
  for name in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):  # Cloud TPU on GKE
    if len([host for host in environ.get(name, "").split(",") if host]) > 1:
      return f"Cloud TPU ({name})"
  if _int(environ, "MEGASCALE_NUM_SLICES") > 1:
    return "Cloud TPU multislice"
  return None


def should_initialize_distributed(mode: str, environ: Mapping[str, str]) -> bool:
  """Whether to call jax.distributed.initialize() under `--multihost=mode`."""
  if mode not in MULTIHOST_MODES:
    raise ValueError(f"--multihost={mode!r} is invalid: allowed: {', '.join(MULTIHOST_MODES)}.")
  if mode == "auto":
    return multihost_environment(environ) is not None
  return mode == "on"


def distributed_arguments(environ: Mapping[str, str]) -> dict[str, int]:
  """num_processes/process_id from JAX_NUM_PROCESSES/JAX_PROCESS_ID when set (jax itself
  reads only JAX_COORDINATOR_ADDRESS); the cluster launchers above need neither."""
  arguments = {}
  for argument, name in (("num_processes", "JAX_NUM_PROCESSES"),
                         ("process_id", "JAX_PROCESS_ID")):
    if environ.get(name):
      arguments[argument] = int(environ[name])
  return arguments


def initialize_distributed(mode: str, environ: Mapping[str, str] = os.environ) -> bool:
  """Calls jax.distributed.initialize() when `should_initialize_distributed`; must run
  before any other JAX call. Returns whether it did."""
  if not should_initialize_distributed(mode, environ):
    return False
  logging.info("Initialising the JAX distributed system (--multihost=%s, %s).", mode,
               multihost_environment(environ) or "auto-detected by JAX")
  jax.distributed.initialize(**distributed_arguments(environ))
  return True


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  initialize_distributed(FLAGS.multihost)
  # TF only feeds the input pipeline; keep it off the accelerators JAX uses.
  tf.config.experimental.set_visible_devices([], "GPU")
  logging.info("JAX process %d of %d; local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


def run() -> None:
  """The `lpaae-train` command (python -m lpaae_jax.main)."""
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
