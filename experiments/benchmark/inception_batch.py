r"""InceptionV3 (FID's pool3 network) images per second by batch size, on this backend.

  python -m experiments.benchmark.inception_batch [--batch_sizes=1,2,4,10,50,100] \
      [--weights=$LPAAE_INCEPTION_DIR/pt_inception-2015-12-05_fid_nofc.npz] [--repeats=3] \
      [--fast_paths=auto|cpu|xla]

For each batch size: the compile (first call) and the best of `--repeats` timed calls of
the network on random 299x299 inputs, as images per second. On XLA:CPU small batches run
about twice as fast per image as the batches of 50-100 that suit accelerators, which is why
`evaluate.inception_batch_size` caps them with the CPU fast paths
(`backend.CPU_INCEPTION_BATCH_SIZE`; measurements in experiments/benchmark/NOTEBOOK.md).
`--fast_paths` compiles the network as evaluation does under that config.fast_paths value
(`cpu`: with `Backend.compiler_options`, XLA's own convolutions instead of YNNPACK's).
"""

import time

from absl import app
from absl import flags
import jax
import numpy as np

from lpaae_jax import backend
from lpaae_jax.evaluation import inception

flags.DEFINE_list("batch_sizes", ["1", "2", "4", "10", "50", "100"], "Batch sizes to time.")
flags.DEFINE_string("weights", None, "Inception weights (.npz); default: as evaluate resolves.")
flags.DEFINE_integer("repeats", 3, "Timed calls per batch size (the best is reported).")
flags.DEFINE_enum("fast_paths", "auto", ["auto", "cpu", "xla"],
                  "config.fast_paths whose compiler options the network compiles with.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  variables = inception.load_inception_variables(inception.resolve_inception_weights(
      FLAGS.weights))
  compiler_options = backend.from_fast_paths(FLAGS.fast_paths).compiler_options()
  print(f"jax {jax.__version__} on {jax.default_backend()}; InceptionV3 pool3, float32; "
        f"fast_paths={FLAGS.fast_paths}, compiler options {dict(compiler_options)}")
  print(f"{'batch':>6} {'compile s':>10} {'call s':>8} {'images/s':>9}")
  for batch_size in map(int, FLAGS.batch_sizes):
    network = inception.make_inception_fn(variables, batch_size, preprocess=False,
                                          compiler_options=compiler_options)
    inputs = np.random.default_rng(0).uniform(
        -1, 1, (batch_size, inception.INPUT_SIZE, inception.INPUT_SIZE, 3)).astype(np.float32)
    call = lambda: network(inputs)  # returns numpy: the call has finished
    start = time.perf_counter()
    call()
    compile_seconds = time.perf_counter() - start
    best = float("inf")
    for _ in range(FLAGS.repeats):
      start = time.perf_counter()
      call()
      best = min(best, time.perf_counter() - start)
    print(f"{batch_size:>6} {compile_seconds:>10.1f} {best:>8.2f} {batch_size / best:>9.2f}",
          flush=True)


if __name__ == "__main__":
  app.run(main)
