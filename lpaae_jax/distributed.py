"""Multi-host start-up: whether and how to call `jax.distributed.initialize()`.

`--multihost=auto` (the training command's default) initialises when the environment
describes a job of several processes; `on` always (e.g. a Cloud TPU pod on GCE, which JAX
recognises from its metadata server rather than the environment); `off` never.
"""

import os
from typing import Mapping, Optional

from absl import logging
import jax

MULTIHOST_MODES = ("auto", "on", "off")


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
