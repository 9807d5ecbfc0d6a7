r"""A run's TensorBoard scalars as a table: every loss term's magnitude over training, and
the artefact ratios of the periodic image summaries (does the lattice grow, stay or fade?).

  python -m experiments.cifar10_fidelity.scalars runs/cifar10_fidelity/<run> [<run> ...] \
      [--tags=aae/,prior/,eval/] [--every=500] [--out=FILE.md]

One markdown table per workdir: a row per logged step that is a multiple of --every (and
the last), a column per scalar whose tag starts with one of --tags; training logs the
losses every config.log_every_steps (means over the interval) and the `eval/` ratios with
the image summaries every config.eval_every_steps.
"""

import os

from absl import app
from absl import flags
import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

flags.DEFINE_list("tags", ["aae/", "prior/", "eval/"], "Tag prefixes to show.")
flags.DEFINE_integer("every", 500, "Show the steps that are multiples of this.")
flags.DEFINE_string("out", None, "Also write the tables to this markdown file.")
FLAGS = flags.FLAGS


def read_scalars(workdir: str) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of every scalar in the workdir's event files (clu writes them
  as tensors)."""
  scalars: dict[str, dict[int, float]] = {}
  files = sorted(f for f in os.listdir(workdir) if f.startswith("events.out.tfevents"))
  for name in files:
    accumulator = event_accumulator.EventAccumulator(
        os.path.join(workdir, name), size_guidance={event_accumulator.TENSORS: 0,
                                                    event_accumulator.SCALARS: 0})
    accumulator.Reload()
    for tag in accumulator.Tags().get("tensors", []):
      for event in accumulator.Tensors(tag):
        value = np.asarray(tensor_util.make_ndarray(event.tensor_proto))
        if value.size == 1:
          scalars.setdefault(tag, {})[event.step] = float(value)
    for tag in accumulator.Tags().get("scalars", []):
      for event in accumulator.Scalars(tag):
        scalars.setdefault(tag, {})[event.step] = float(event.value)
  return scalars


def table(workdir: str, prefixes, every: int) -> str:
  scalars = {tag: values for tag, values in read_scalars(workdir).items()
             if tag.startswith(tuple(prefixes))}
  if not scalars:
    return f"## {workdir}\n\n(no scalars with tags {', '.join(prefixes)})\n"
  steps = sorted({step for values in scalars.values() for step in values})
  shown = [step for step in steps if step % every == 0 or step == steps[-1]]
  tags = sorted(scalars)
  lines = [f"## {workdir}", "", "| step | " + " | ".join(tags) + " |",
           "|---|" + "---|" * len(tags)]
  for step in shown:
    lines.append(f"| {step} | " + " | ".join(
        f"{scalars[tag][step]:.4g}" if step in scalars[tag] else "" for tag in tags) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  tables = [table(workdir, FLAGS.tags, FLAGS.every) for workdir in argv[1:]]
  text = "\n".join(tables)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as out:
      out.write(text)


if __name__ == "__main__":
  app.run(main)
