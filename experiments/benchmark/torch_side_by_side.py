r"""Our training iteration against a straightforward PyTorch eager one, side by side.

  python -m experiments.benchmark.torch_side_by_side --torch_python=/path/to/venv/bin/python \
      [--widths=8,16,64] [--repeats=5] [--pairs=3] [--steps_per_jit=4] \
      [--out=experiments/benchmark/torch_side_by_side_cpu.md]

The PyTorch side (`torch_reference.py`) runs in its own virtual environment, which this
command never installs (e.g. `python3 -m venv TORCH_VENV && TORCH_VENV/bin/pip install
torch numpy`, then `--torch_python=TORCH_VENV/bin/python`); ours is `python -m
lpaae_jax.benchmark`.
For each width (8: MNIST, else CIFAR-10; supervised setting, learned prior, batch 64,
float32) the two run one after the other, never together, each timing `--repeats` full
iterations (AAE phase + prior phase) after warm-up; `--pairs` such back-to-back pairs per
width, because this machine's speed drifts by tens of percent within minutes (each pair's
ratio is printed; the table gives the medians and the range of the pairs' ratios). With
`--steps_per_jit=k > 1` ours also times the fused call of k iterations (what the training
loop runs with that config), in a column of its own. Prints a markdown table, ms per
iteration and ours / PyTorch speed (above 1: ours is faster), and writes it to `--out`.
Both sides inherit this command's environment, so `LD_PRELOAD=.../libtcmalloc_minimal.so.4`
compares them with tcmalloc; the table's header names the malloc.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))


def _define_flags():
  """Defined when run as a command only, so tests can import `table` beside other
  benchmark modules' flags of the same names."""
  flags.DEFINE_string("torch_python", None, "The python of a virtual environment with torch.")
  flags.DEFINE_list("widths", ["8", "16", "64"], "model.width of each row (8: MNIST).")
  flags.DEFINE_integer("repeats", 5, "Timed iterations per measurement (median).")
  flags.DEFINE_integer("batch_size", 64, "Batch size.")
  flags.DEFINE_integer("pairs", 3, "Back-to-back (ours, PyTorch) measurements per width.")
  flags.DEFINE_integer("steps_per_jit", 1, "Also time our fused call of this many iterations "
                       "(1: single-iteration calls only).")
  flags.DEFINE_string("out", None, "Also write the table here.")
  flags.mark_flags_as_required(["torch_python"])


def _dataset(width: int) -> str:
  return "mnist" if width == 8 else "cifar10"


def ours(width: int, repeats: int, batch_size: int, steps_per_jit: int = 1) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "ours.json")
    subprocess.run([sys.executable, "-m", "lpaae_jax.benchmark",
                    f"--config={_ROOT}/configs/{_dataset(width)}.py:supervised",
                    f"--config.model.width={width}", f"--config.batch_size={batch_size}",
                    f"--config.steps_per_jit={steps_per_jit}", f"--repeats={repeats}",
                    "--loop_steps=0", f"--json={path}"],
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
  fused = any("fused_ms" in row for row in rows)
  lines = ["| width | dataset | ours (ms/iter) | PyTorch eager (ms/iter) | ours / PyTorch speed"
           " (pairs) |" + (" ours, fused call (ms/iter) | fused / PyTorch (pairs) |" if fused
                           else ""),
           "|---|---|---|---|---|" + ("---|---|" if fused else "")]
  for row in rows:
    line = (f"| {row['width']} | {row['dataset']} | {row['ours_ms']:.0f} | "
            f"{row['torch_ms']:.0f} | {_ratios(row['ratios'])} |")
    if fused:
      line += f" {row['fused_ms']:.0f} | {_ratios(row['fused_ratios'])} |"
    lines.append(line)
  return "\n".join(lines)


def _ratios(ratios: list[float]) -> str:
  """The median ratio and, over several pairs, their range."""
  text = f"{statistics.median(ratios):.2f}x"
  if len(ratios) > 1:
    text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
  return text


def _malloc_sides(ours_malloc: str) -> str:
  """The malloc line: the same library both sides, but cpu/malloc.py's settings are ours."""
  kept = ", freed memory kept"
  if ours_malloc.endswith(kept):
    return (f"{ours_malloc} (ours, cpu/malloc.py), "
            f"{ours_malloc[:-len(kept)]} as it comes (PyTorch)")
  return f"{ours_malloc} (both sides)"


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  rows = []
  torch_version = malloc = None
  for width in (int(w) for w in FLAGS.widths):
    pairs = []
    for pair in range(FLAGS.pairs):
      mine = ours(width, FLAGS.repeats, FLAGS.batch_size, FLAGS.steps_per_jit)
      theirs = torch_reference(FLAGS.torch_python, width, FLAGS.repeats, FLAGS.batch_size)
      torch_version, malloc = theirs["framework"], mine["environment"]["malloc"]
      pairs.append((mine["phases"], theirs["ms"]["iteration"]))
      print(f"width {width} pair {pair + 1}: ours {mine['phases']['iteration']['ms']:.0f} ms, "
            f"PyTorch {theirs['ms']['iteration']:.0f} ms", flush=True)
    row = {"width": width, "dataset": _dataset(width),
           "ours_ms": statistics.median(p["iteration"]["ms"] for p, _ in pairs),
           "torch_ms": statistics.median(t for _, t in pairs),
           "ratios": [t / p["iteration"]["ms"] for p, t in pairs]}
    if FLAGS.steps_per_jit > 1:
      row["fused_ms"] = statistics.median(p["fused"]["ms"] for p, _ in pairs)
      row["fused_ratios"] = [t / p["fused"]["ms"] for p, t in pairs]
    rows.append(row)
    print(table(rows[-1:]).splitlines()[-1], flush=True)
  report = "\n".join([
      f"Supervised, learned prior, batch {FLAGS.batch_size}, float32, median of "
      f"{FLAGS.repeats} iterations, {FLAGS.pairs} back-to-back pairs per width (medians; "
      f"ratios: median (range) of the pairs'); {platform.machine()} CPU, "
      f"{os.cpu_count()} cores, malloc: {_malloc_sides(malloc)}; "
      f"{torch_version} against lpaae_jax (python -m lpaae_jax.benchmark).", "",
      table(rows), ""])
  print(report)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as out:
      out.write(report)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
