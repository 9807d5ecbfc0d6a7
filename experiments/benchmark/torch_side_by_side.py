r"""Our training iteration against a straightforward PyTorch eager one, side by side.

  python -m experiments.benchmark.torch_side_by_side --torch_python=/path/to/venv/bin/python \
      [--widths=8,16,64] [--repeats=5] [--out=experiments/benchmark/torch_side_by_side_cpu.md]

The PyTorch side (`torch_reference.py`) runs in its own virtual environment, which this
command never installs (e.g. `python3 -m venv TORCH_VENV && TORCH_VENV/bin/pip install
torch numpy`, then `--torch_python=TORCH_VENV/bin/python`); ours is `python -m
lpaae_jax.benchmark`.
For each width (8: MNIST, else CIFAR-10; supervised setting, learned prior, batch 64,
float32) the two run one after the other, never together, each timing `--repeats` full
iterations (AAE phase + prior phase) after warm-up. Prints a markdown table, ms per
iteration and ours / PyTorch speed (above 1: ours is faster), and writes it to `--out`.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))

flags.DEFINE_string("torch_python", None, "The python of a virtual environment with torch.")
flags.DEFINE_list("widths", ["8", "16", "64"], "model.width of each row (8: MNIST).")
flags.DEFINE_integer("repeats", 5, "Timed iterations per measurement (median).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_string("out", None, "Also write the table here.")
flags.mark_flags_as_required(["torch_python"])


def _dataset(width: int) -> str:
  return "mnist" if width == 8 else "cifar10"


def ours(width: int, repeats: int, batch_size: int) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "ours.json")
    subprocess.run([sys.executable, "-m", "lpaae_jax.benchmark",
                    f"--config={_ROOT}/configs/{_dataset(width)}.py:supervised",
                    f"--config.model.width={width}", f"--config.batch_size={batch_size}",
                    f"--repeats={repeats}", "--loop_steps=0", f"--json={path}"],
                   cwd=_ROOT, check=True, stdout=subprocess.DEVNULL)
    with open(path, encoding="utf-8") as result:
      return json.load(result)


def torch_reference(torch_python: str, width: int, repeats: int, batch_size: int) -> dict:
  output = subprocess.run([torch_python, os.path.join(_HERE, "torch_reference.py"),
                           f"--dataset={_dataset(width)}", f"--width={width}",
                           f"--batch_size={batch_size}", f"--repeats={repeats}"],
                          check=True, capture_output=True, text=True).stdout
  return json.loads(output)


def table(rows: list[dict]) -> str:
  lines = ["| width | dataset | ours (ms/iter) | PyTorch eager (ms/iter) | ours / PyTorch speed |",
           "|---|---|---|---|---|"]
  for row in rows:
    lines.append(f"| {row['width']} | {row['dataset']} | {row['ours_ms']:.0f} | "
                 f"{row['torch_ms']:.0f} | {row['torch_ms'] / row['ours_ms']:.2f}x |")
  return "\n".join(lines)


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  rows = []
  torch_version = None
  for width in (int(w) for w in FLAGS.widths):
    mine = ours(width, FLAGS.repeats, FLAGS.batch_size)
    theirs = torch_reference(FLAGS.torch_python, width, FLAGS.repeats, FLAGS.batch_size)
    torch_version = theirs["framework"]
    rows.append({"width": width, "dataset": _dataset(width),
                 "ours_ms": mine["phases"]["iteration"]["ms"],
                 "torch_ms": theirs["ms"]["iteration"]})
    print(table(rows[-1:]).splitlines()[-1], flush=True)
  report = "\n".join([
      f"Supervised, learned prior, batch {FLAGS.batch_size}, float32, median of "
      f"{FLAGS.repeats} iterations; {platform.machine()} CPU, {os.cpu_count()} cores; "
      f"{torch_version} against lpaae_jax (python -m lpaae_jax.benchmark).", "",
      table(rows), ""])
  print(report)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as out:
      out.write(report)


if __name__ == "__main__":
  app.run(main)
