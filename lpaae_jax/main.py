"""Trains an LPAAE model.

  python -m lpaae_jax.main --config=configs/mnist.py:supervised --workdir=runs/mnist

Rerunning the same command resumes from the workdir's latest checkpoint. Any config field
can be overridden, e.g. `--config.batch_size=128 --config.model.prior=fixed`.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import tensorflow as tf

from lpaae_jax import train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints and TensorBoard logs.")
config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  # TF only feeds the input pipeline; keep it off the accelerators JAX uses.
  tf.config.experimental.set_visible_devices([], "GPU")
  logging.info("JAX process %d of %d; local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
