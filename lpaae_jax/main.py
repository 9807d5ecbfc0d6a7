"""Trains an LPAAE model.

  python -m lpaae_jax.main --config=configs/mnist.py:supervised --workdir=runs/mnist

Rerunning the same command resumes from the workdir's latest checkpoint. Any config field
can be overridden, e.g. `--config.batch_size=128 --config.model.prior=fixed`.

Several hosts: start the same command on every host; `--multihost` (auto, on, off; see
lpaae_jax.distributed) decides whether it calls `jax.distributed.initialize()`.

An error we raise on purpose (a bad config value, missing data, a full disk, ...) ends the
command with its one-line message; `--verbose` shows its traceback and every library's INFO
log lines (see lpaae_jax.cli).
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from lpaae_jax import cli
from lpaae_jax import config_validation
from lpaae_jax import distributed
from lpaae_jax import file_utils

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Only when run as a command: importing this module (e.g. in tests) must not claim
  # global flag names (`--config` is also the evaluator's and the benchmark's).
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and TensorBoard logs.")
  config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                  lock_config=True)
  flags.DEFINE_enum("multihost", "auto", distributed.MULTIHOST_MODES,
                    "Call jax.distributed.initialize(): auto = when the environment "
                    "describes a multi-process job, on = always, off = never.")
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  # A bad config or workdir ends the command here, before the training modules import
  # TensorFlow and clu (most of the start-up time).
  config_validation.validate_config(FLAGS.config)
  file_utils.check_local_workdir(FLAGS.workdir)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from lpaae_jax import train  # pylint: disable=g-import-not-at-top
  distributed.initialize_distributed(FLAGS.multihost)
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
