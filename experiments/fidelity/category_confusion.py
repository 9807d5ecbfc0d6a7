r"""Which digits does each unsupervised category draw? The judge's reading of s = j, per j.

  LPAAE_DATA_DIR=../shared/tfds python -m experiments.fidelity.category_confusion \
      --judge=runs/fidelity/judge --num_samples=2000 \
      --out=experiments/fidelity/results/category_confusion.md \
      runs/fidelity/unsup_s_scale_3_adv_code_0.3_seed1_w8_4500steps ...

For each run directory (trained with the library's loop, so its config is stored in it), at
its latest checkpoint with precise BatchNorm statistics (as the evaluation uses them):
`--num_samples` prior samples with s balanced over the classes, read by the judge; a table
of counts, one row per category s and one column per digit, and the Hungarian-matched
cluster accuracy experiments/fidelity reports. A category whose row spreads over several
digits while the noise picks among them is a merge; a digit spread over several rows is a
split. Writes the tables to --out.
"""

import os

from absl import app
from absl import flags
import jax
import numpy as np

import lpaae_jax
from lpaae_jax import checkpointing
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax import provenance
from lpaae_jax.evaluation import disentanglement
from lpaae_jax.evaluation import judge


def _define_flags() -> None:
  flags.DEFINE_string("judge", None, "The MNIST judge classifier's directory.")
  flags.DEFINE_integer("num_samples", 2000, "Prior samples per run (s balanced).")
  flags.DEFINE_string("out", None, "Also write the tables here.")
  flags.mark_flags_as_required(["judge"])


def category_table(config, states, judge_model, num_samples: int) -> tuple[np.ndarray, float]:
  """(counts[s, digit] of the judge's reading of samples with category s, cluster accuracy)."""
  states = evaluate.recalibrated(config, states)
  num_classes = config.model.num_classes
  s = disentanglement.balanced_conditions(num_samples, num_classes)
  samples = np.asarray(lpaae_jax.sample(states, jax.random.key(5), num_samples, s=s))
  digits = judge.judge_predict(judge_model, samples)
  counts = disentanglement.confusion_counts(s, digits, num_classes)
  return counts, disentanglement.cluster_accuracy(digits, s, num_classes)


def markdown(name: str, step: int, counts: np.ndarray, accuracy: float) -> str:
  header = "| s \\ judge | " + " | ".join(str(d) for d in range(counts.shape[1])) + " |"
  lines = [f"### {name}, step {step}: cluster accuracy {accuracy:.3f}", "", header,
           "|---" * (counts.shape[1] + 1) + "|"]
  lines += [f"| {s} | " + " | ".join(str(int(c)) for c in row) + " |"
            for s, row in enumerate(counts)]
  return "\n".join(lines) + "\n"


def main(argv):
  run_dirs = argv[1:]
  if not run_dirs:
    raise app.UsageError("Name one or more run directories.")
  judge_model = judge.load_judge(flags.FLAGS.judge, dataset="mnist")
  sections = []
  for run_dir in run_dirs:
    config = provenance.load_config(run_dir)
    manager = checkpointing.create_manager(run_dir, config)
    try:
      step = manager.latest_step()
      if step is None:
        raise app.UsageError(f"{run_dir} has no checkpoint: train it first.")
      states, _ = checkpointing.restore(manager, config, step)
    finally:
      manager.close()
    counts, accuracy = category_table(config, states, judge_model, flags.FLAGS.num_samples)
    sections.append(markdown(os.path.basename(run_dir.rstrip("/")), step, counts, accuracy))
  text = "\n".join(sections)
  print(text)
  if flags.FLAGS.out:
    file_utils.write_atomically(flags.FLAGS.out, lambda f: f.write(text.encode("utf-8")))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
