r"""Is the unsupervised s still finding the classes when training stops, or has it settled?

  LPAAE_DATA_DIR=../shared/tfds python -m experiments.fidelity.cluster_over_steps \
      --judge=runs/mnist_cpu_study/judge --num_samples=2000 \
      --out=experiments/fidelity/results/cluster_over_steps.md \
      runs/mnist_cpu_study/unsupervised_learned_seed0 ...

For each run directory (trained with the library's loop, so its config is stored in it) and
each checkpoint it keeps: the states with precise BatchNorm statistics, as the evaluation
uses them; `--num_samples` prior samples with s balanced over the classes; the judge's
Hungarian-matched cluster accuracy (the number experiments/fidelity reports at the last
step). Prints a markdown table and writes it to --out.
"""

import os

from absl import app
from absl import flags
from absl import logging

from experiments.fidelity import category_confusion
from lpaae_jax import checkpointing
from lpaae_jax import file_utils
from lpaae_jax import provenance
from lpaae_jax.evaluation import judge

flags.DEFINE_string("judge", None, "The MNIST judge classifier's directory.")
flags.DEFINE_integer("num_samples", 2000, "Prior samples per checkpoint (s balanced).")
flags.DEFINE_string("out", None, "Also write the table here.")
flags.mark_flags_as_required(["judge"])


def cluster_accuracy_at(config, states, judge_model, num_samples: int) -> float:
  return category_confusion.category_table(config, states, judge_model, num_samples)[1]


def main(argv):
  run_dirs = argv[1:]
  if not run_dirs:
    raise app.UsageError("Name one or more run directories.")
  judge_model = judge.load_judge(flags.FLAGS.judge, dataset="mnist")
  lines = ["| run | " + " | ".join(["step", "cluster acc."]) + " |", "|---|---|---|"]
  for run_dir in run_dirs:
    config = provenance.load_config(run_dir)
    manager = checkpointing.create_manager(run_dir, config)
    try:
      for step in manager.all_steps():
        states, _ = checkpointing.restore(manager, config, step)
        accuracy = cluster_accuracy_at(config, states, judge_model, flags.FLAGS.num_samples)
        logging.info("%s step %d: cluster accuracy %.3f", run_dir, step, accuracy)
        lines.append(f"| {os.path.basename(run_dir.rstrip('/'))} | {step} | {accuracy:.3f} |")
    finally:
      manager.close()
  table = "\n".join(lines) + "\n"
  print(table)
  if flags.FLAGS.out:
    file_utils.write_atomically(flags.FLAGS.out, lambda f: f.write(table.encode("utf-8")))


if __name__ == "__main__":
  app.run(main)
