r"""Where a training iteration's time goes on this backend: XLA's per-op times, by kind.

Run:
  python -m experiments.benchmark.profile_ops --config=configs/cifar10.py \
      [--config.fast_paths=xla] > experiments/benchmark/profile_cpu_w64.txt

Profiles two iterations of each phase step (after two warm-up iterations) with
`jax.profiler`, maps each traced op back to its HLO instruction, and sums the time of:
convolution kernel gradients (a convolution whose output is a kernel: a <= 4x4 spatial
result), other convolutions, dots, and everything else, then lists the slowest ops.
`--config.fast_paths=xla` turns off the CPU formulations (cpu/conv.py's matmul kernel gradients,
Winograd and thin convs, sub-pixel transposed convs: XLA's own convolutions instead), to see what they replace. Op times can sum to more than the wall time (ops run in parallel).
With the CPU formulations on, the process keeps freed memory first, as training does
(`Backend.configure_process`); the wall times include the profiler's own overhead.
"""

import collections
import glob
import gzip
import json
import re
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

import lpaae_jax
from lpaae_jax import backend
from lpaae_jax import train_steps

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.",
                                          lock_config=True)
_TOP = flags.DEFINE_integer("top", 25, "How many of the slowest ops to list.")
ITERATIONS = 2


def instructions(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> a description (op; for fusions, the convs/dots they hold)."""
  computations, current = {}, None
  described = {}
  for line in hlo_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
    if header and not line.startswith(" "):
      current = computations.setdefault(header.group(1), [])
      continue
    inst = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\((.*)", line)
    if inst and current is not None:
      current.append(inst.groups())
  for body in computations.values():
    for name, shape, op, rest in body:
      if op == "fusion":
        called = re.search(r"calls=%?([\w.\-]+)", rest)
        inner = [(s, o, r) for (_, s, o, r) in computations.get(called.group(1), [])
                 if o in ("convolution", "dot")] if called else []
        described[name] = "; ".join(f"{o} {s} " + _window(r) for s, o, r in inner[:2]) or \
            f"fusion -> {shape}"
      else:
        described[name] = f"{op} {shape} " + _window(rest)
  return described


def _window(rest: str) -> str:
  window = re.search(r"window=\{([^}]*)\}", rest)
  return f"window {window.group(1)}" if window else ""


def kind_of(description: str) -> str:
  conv = re.match(r"convolution f32\[(\d+),(\d+),(\d+),(\d+)\]", description)
  if conv:
    small_spatial = int(conv.group(2)) <= 4 and int(conv.group(3)) <= 4
    return "convolution kernel gradient" if small_spatial else "convolution"
  if description.startswith("dot"):
    return "dot"
  return "other (elementwise, reductions, copies)"


def profile(config) -> None:
  backend.from_config(config).configure_process()  # as training and the benchmark do
  states = lpaae_jax.create_states(config, jax.random.key(0))
  rng = np.random.default_rng(0)
  size, channels = config.model.image_size, config.model.channels
  batch = {"image": rng.uniform(-1, 1, (config.batch_size, size, size, channels)).astype(
               np.float32),
           "label": rng.integers(0, config.model.num_classes, config.batch_size).astype(
               np.int32)}
  key = jax.random.key(1)
  jitted = lpaae_jax.make_train_steps(config)
  steps = {phase: step.lower(states, batch, key).compile()
           for phase, step in (("aae", jitted.aae_phase), ("prior", jitted.prior_phase))}
  for iteration in range(2):  # warm-up
    for phase, (phase_key) in zip(steps, train_steps.iteration_keys(key, iteration)):
      states, _ = steps[phase](states, batch, phase_key)
  jax.block_until_ready(states)
  by_kind, rows, wall = collections.Counter(), [], {}
  for index, phase in enumerate(steps):
    described = instructions(steps[phase].as_text())
    with tempfile.TemporaryDirectory() as trace_dir:
      start = time.perf_counter()
      with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for iteration in range(2, 2 + ITERATIONS):
          states, _ = steps[phase](states, batch,
                                   train_steps.iteration_keys(key, iteration)[index])
        jax.block_until_ready(states)
      wall[phase] = (time.perf_counter() - start) / ITERATIONS
      trace = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
      events = json.load(gzip.open(trace))["traceEvents"]
    seconds = collections.Counter()
    for event in events:
      if event.get("ph") == "X" and event.get("name") in described:
        seconds[event["name"]] += event["dur"] / 1e6 / ITERATIONS
    for name, value in seconds.items():
      by_kind[kind_of(described[name])] += value
      rows.append((value, phase, described[name]))
  total = sum(by_kind.values())
  print(f"{config.dataset} width {config.model.width} batch {config.batch_size}, "
        f"fast_paths={config.fast_paths} "
        f"(CPU formulations {'on' if states.spec.backend.cpu else 'off'}), "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
  print(f"wall per iteration: aae {wall['aae']:.2f} s + prior {wall['prior']:.2f} s; "
        f"op time {total:.2f} s")
  for kind, value in by_kind.most_common():
    print(f"  {kind:<42}{value:7.2f} s  {100 * value / total:4.0f}%")
  print(f"slowest {_TOP.value} ops (ms per iteration, phase, op):")
  for value, phase, description in sorted(rows, reverse=True)[:_TOP.value]:
    print(f"  {1000 * value:8.2f}  {phase:<6}{description[:150]}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  profile(_CONFIG.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
