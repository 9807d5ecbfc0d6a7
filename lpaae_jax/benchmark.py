r"""Benchmark of the training iteration: step times, compile times, FLOPs, roofline, loop.

Run:
  python -m lpaae_jax.benchmark --config=configs/cifar10.py [--config.model.width=64] \
      [--json=bench.json] [--repeats=5] [--loop_steps=20]
  python -m lpaae_jax.benchmark --workdir=runs/cifar10   # the run's stored config.json

Measures, at the config's width, batch and compute_dtype:
  * each phase step (aae, prior) and the full iteration: median ms and images/s over
    `--repeats` timed repetitions after `--warmup` untimed ones. The states advance
    between repetitions as in training (the steps donate them). Phases are timed one at
    a time (blocking after each); the iteration is timed as training runs it (both phases
    dispatched back to back, one block at the end).
  * with config.steps_per_jit = k > 1, also the fused call (k iterations per call, as the
    loop runs them): ms and images/s per iteration, its compile time, and the roofline from
    the single steps' FLOPs (the same arithmetic),
  * the compile time of each phase step (`lower(...).compile()`; that executable is the
    one timed, so nothing compiles twice),
  * FLOPs per step: the model's arithmetic, from XLA's cost analysis of the steps lowered
    with the plain layers (fast_paths off: direct convolutions), the achieved FLOP/s, and
    the roofline fraction: achieved FLOP/s / this device's dense matmul FLOP/s measured in
    the same run (float32 on CPU, the config's compute_dtype on accelerators). A CPU
    formulation that saves multiplies (cpu/conv.py's Winograd convolutions) shows as a higher
    achieved rate, as MFU counts it (the executables' own counts: `executed_gflops`),
  * the training loop's images/s (`train.train_and_evaluate` for `--loop_steps` steps on
    mock data, or on the real dataset when its data_dir has it), without its first logging
    interval (compilation), and the loop overhead 1 - loop / pure iteration (the fused
    call's rate when steps_per_jit > 1),
  * peak host RSS and, where the device reports it, peak device memory.

Batches are random with the right shapes; states and batches are placed as the training
loop places them, so the loop reuses the compilations made here.
"""

import copy
import dataclasses
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from typing import Any, Callable, Optional

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags

import lpaae_jax
from lpaae_jax import backend
from lpaae_jax import cli
from lpaae_jax import config_validation
from lpaae_jax import models
from lpaae_jax import provenance
from lpaae_jax import states as states_lib
from lpaae_jax import train
from lpaae_jax import train_steps
from lpaae_jax.cpu import malloc

def _define_flags() -> dict:
  # Only when run as a command: importing this module must not claim global flag names
  # (`--config` is also the trainer's and the evaluator's).
  return {
      "config": config_flags.DEFINE_config_file("config", None, "Training config file.",
                                                lock_config=True),
      "workdir": flags.DEFINE_string("workdir", None,
                                     "A training workdir whose stored config (config.json) "
                                     "is benchmarked when --config is omitted."),
      "json": flags.DEFINE_string("json", None, "Also write the results as JSON to this path."),
      # Bounds checked at parsing: a bad value is a one-line flag error, not a traceback.
      "repeats": flags.DEFINE_integer("repeats", 5,
                                      "Timed repetitions per measurement (median).",
                                      lower_bound=1),
      "warmup": flags.DEFINE_integer("warmup", 1, "Untimed repetitions before timing.",
                                     lower_bound=0),
      "loop_steps": flags.DEFINE_integer("loop_steps", 20,
                                         "Training-loop steps to time (0 skips the loop).",
                                         lower_bound=0),
      "loop_log_every": flags.DEFINE_integer(
          "loop_log_every", 0,
          "Loop logging interval in steps (0: about loop_steps // 4, a multiple of "
          "config.steps_per_jit)."),
      "matmul_size": flags.DEFINE_integer(
          "matmul_size", 0,
          "Side of the peak-throughput matmul (0: 2048 on CPU, 8192 otherwise)."),
  }

PHASES = ("aae", "prior", "iteration")
MiB = 2**20


# ----------------------------------------------------------------------------- setup


def random_batch(config: ml_collections.ConfigDict, key, sharding,
                 num_stacked: Optional[int] = None) -> dict[str, jax.Array]:
  """A batch with the training shapes: images uniform in [-1, 1], labels in [0, classes).
  With `num_stacked`, that many batches stacked on a leading axis (the fused call's input)."""
  image_key, label_key = jax.random.split(key)
  size, channels = config.model.image_size, config.model.channels
  lead = (config.batch_size,) if num_stacked is None else (num_stacked, config.batch_size)
  image = jax.random.uniform(image_key, lead + (size, size, channels), jnp.float32, -1.0, 1.0)
  label = jax.random.randint(label_key, lead, 0, config.model.num_classes, jnp.int32)
  return jax.device_put({"image": image, "label": label}, sharding)


def flops_of(compiled) -> Optional[float]:
  """FLOPs of a compiled executable (or a lowered step) from XLA's cost analysis, None when
  unavailable.

  `cost_analysis()` returns a dict, or a list of dicts (one per program) on some
  versions and backends; it may also be None or lack 'flops'.
  """
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except  (unsupported on some backends)
    return None
  if isinstance(analysis, dict):
    analysis = [analysis]
  flops = [a.get("flops") for a in analysis or () if isinstance(a, dict)]
  flops = [f for f in flops if f is not None and f >= 0]
  return float(sum(flops)) if flops else None


def model_flops(step_jit, config: ml_collections.ConfigDict, batch, key,
                state_sharding=None) -> Optional[float]:
  """A phase step's arithmetic as the plain layers compute it: the cost analysis of the
  step lowered (not compiled) for the shapes of states built with the CPU fast paths off,
  placed by `state_sharding`. XLA counts a convolution's multiply-adds over real input
  positions, so nn.ConvTranspose counts as its sub-pixel form does; Winograd's fewer
  multiplies do not lower the count."""
  plain_spec = dataclasses.replace(models.ModelSpec.from_config(config),
                                   backend=backend.Backend(cpu=False))
  shapes = jax.eval_shape(lambda k: states_lib.init_states(
      plain_spec, states_lib.make_optimizers(config), k), jax.random.key(0))
  shapes = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                                       sharding=state_sharding), shapes)
  return flops_of(step_jit.lower(shapes, batch, key))


def compile_timed(jitted, *args) -> tuple[Any, float]:
  """AOT-compiles `jitted` for `args`; returns (executable, seconds)."""
  start = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - start


# ----------------------------------------------------------------------------- timing


def time_steps(aae, prior, states, batch, key, *, repeats: int,
               warmup: int) -> tuple[dict[str, float], Any]:
  """Median seconds of each phase and of the iteration; returns (medians, final states).

  Every call gets a fresh key and the states it returns feed the next call (the steps
  donate their input states, as in training).
  """
  times = {phase: [] for phase in PHASES}
  for rep in range(warmup + repeats):
    keys = jax.random.split(jax.random.fold_in(key, rep), 4)
    start = time.perf_counter()
    states, metrics = aae(states, batch, keys[0])
    jax.block_until_ready((states, metrics))
    middle = time.perf_counter()
    states, metrics = prior(states, batch, keys[1])
    jax.block_until_ready((states, metrics))
    end = time.perf_counter()
    # The iteration as training dispatches it: no synchronisation between the phases.
    states, aae_metrics = aae(states, batch, keys[2])
    states, prior_metrics = prior(states, batch, keys[3])
    jax.block_until_ready((states, aae_metrics, prior_metrics))
    if rep >= warmup:
      times["aae"].append(middle - start)
      times["prior"].append(end - middle)
      times["iteration"].append(time.perf_counter() - end)
  return {phase: statistics.median(t) for phase, t in times.items()}, states


def time_fused(multi_step, states, batches, key, *, repeats: int,
               warmup: int) -> tuple[float, Any]:
  """Median seconds per iteration of the fused call (k iterations per call); returns
  (seconds, final states). Consecutive calls start where the previous one stopped."""
  num_steps = jax.tree_util.tree_leaves(batches)[0].shape[0]
  times = []
  for rep in range(warmup + repeats):
    start = time.perf_counter()
    states, metrics = multi_step(states, batches, key, rep * num_steps)
    jax.block_until_ready((states, metrics))
    if rep >= warmup:
      times.append((time.perf_counter() - start) / num_steps)
  return statistics.median(times), states


def matmul_throughput(size: int, dtype, repeats: int) -> dict[str, Any]:
  """This device's dense matmul FLOP/s: a jitted size x size matmul, median of repeats."""
  a_key, b_key = jax.random.split(jax.random.key(0))
  a = jax.random.normal(a_key, (size, size), dtype)
  b = jax.random.normal(b_key, (size, size), dtype)
  matmul, _ = compile_timed(jax.jit(jnp.matmul), a, b)
  jax.block_until_ready(matmul(a, b))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  return {"n": size, "dtype": jnp.dtype(dtype).name, "ms": 1e3 * seconds,
          "gflops_per_sec": 2 * size**3 / seconds / 1e9}


def matmul_dtype(config: ml_collections.ConfigDict):
  # The CPU runs the model in float32 whatever the config; accelerators in compute_dtype.
  return jnp.float32 if jax.default_backend() == "cpu" else jnp.dtype(config.compute_dtype)


# ----------------------------------------------------------------------------- the loop


def _scalar_values(workdir: str, tag: str) -> list[tuple[int, float]]:
  """(step, value) of a scalar tag in the workdir's TensorBoard event files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (only the loop needs TF)
  values = []
  for name in sorted(os.listdir(workdir)):
    if not name.startswith("events.out.tfevents."):
      continue
    for record in tf.data.TFRecordDataset(os.path.join(workdir, name)):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == tag:
          # clu writes TF2 summaries: the value is a scalar tensor, not simple_value.
          number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                    else value.simple_value)
          values.append((event.step, number))
  return sorted(values)


def _has_real_data(config: ml_collections.ConfigDict) -> bool:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from lpaae_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  try:
    data_dir = input_pipeline.resolve_data_dir(config.data_dir)
    return tfds.builder(config.dataset, data_dir=data_dir).is_prepared()
  except Exception:  # pylint: disable=broad-except  (unknown dataset, unreadable dir)
    return False


def default_loop_log_every(loop_steps: int, steps_per_jit: int) -> int:
  """About 4 intervals, each a multiple of steps_per_jit so the loop makes only fused
  calls (a remainder would be run as single steps, another executable)."""
  return max(steps_per_jit, loop_steps // 4 // steps_per_jit * steps_per_jit)


def loop_config(config: ml_collections.ConfigDict, steps: int,
                log_every: int) -> ml_collections.ConfigDict:
  """The config for a short timed run: evaluation and checkpoints only at its end."""
  config = copy.deepcopy(config)
  config.num_train_steps = steps
  config.log_every_steps = log_every
  config.eval_every_steps = steps
  config.checkpoint_every_steps = steps
  config.profile_num_steps = 0
  return config


def time_training_loop(config: ml_collections.ConfigDict, steps: int,
                       log_every: int) -> dict[str, Any]:
  """images/s of train.train_and_evaluate over `steps` steps, first interval excluded."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = loop_config(config, steps, log_every)
  real_data = _has_real_data(config)
  with tempfile.TemporaryDirectory(prefix="lpaae_benchmark_") as tmp:
    workdir = os.path.join(tmp, "workdir")
    if real_data:
      train.train_and_evaluate(config, workdir)
    else:
      config.data_dir, config.download = os.path.join(tmp, "data"), True
      # mock_data makes the download a no-op and serves random examples of the right shape.
      with tfds.testing.mock_data(num_examples=max(4 * config.batch_size, 64)):
        train.train_and_evaluate(config, workdir)
    rates = _scalar_values(workdir, "images_per_sec")
  # The first interval holds compilation (or its cache lookups) and pipeline warm-up.
  steady = [rate for _, rate in rates[1:]]
  return {"steps": steps, "log_every": log_every, "data": "real" if real_data else "mock",
          "intervals": len(steady),
          "images_per_sec": statistics.median(steady) if steady else None}


# ----------------------------------------------------------------------------- memory


def peak_memory() -> dict[str, Optional[float]]:
  """Peak host RSS of this process and peak device memory (None where not reported)."""
  # ru_maxrss is in KiB on Linux and in bytes on macOS.
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  rss_bytes = rss if platform.system() == "Darwin" else rss * 1024
  device_peak = None
  try:
    stats = jax.local_devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except  (not implemented on some backends)
    stats = None
  if stats and "peak_bytes_in_use" in stats:
    device_peak = stats["peak_bytes_in_use"] / MiB
  return {"peak_host_rss_mib": rss_bytes / MiB, "peak_device_mib": device_peak}


# ----------------------------------------------------------------------------- benchmark


def _ratio(numerator, denominator) -> Optional[float]:
  return None if numerator is None or not denominator else numerator / denominator


def phase_rows(seconds: dict[str, float], compile_s: dict[str, float],
               flops: dict[str, Optional[float]], executed_flops: dict[str, Optional[float]],
               batch_size: int, peak_flops_per_sec: float) -> dict[str, dict[str, Any]]:
  """Per phase: ms, images/s, compile s, GFLOP (the model's; and the executable's),
  achieved GFLOP/s, roofline fraction."""
  rows = {}
  for phase in seconds:
    achieved = _ratio(flops[phase], seconds[phase])
    rows[phase] = {
        "ms": 1e3 * seconds[phase],
        "images_per_sec": batch_size / seconds[phase],
        "compile_s": compile_s[phase],
        "gflops": None if flops[phase] is None else flops[phase] / 1e9,
        "executed_gflops": (None if executed_flops[phase] is None
                            else executed_flops[phase] / 1e9),
        "achieved_gflops_per_sec": None if achieved is None else achieved / 1e9,
        "roofline_fraction": _ratio(achieved, peak_flops_per_sec),
    }
  return rows


def environment(config: ml_collections.ConfigDict) -> dict[str, Any]:
  device = jax.local_devices()[0]
  return {
      "device_kind": device.device_kind, "backend": jax.default_backend(),
      "num_devices": jax.device_count(), "jax_version": jax.__version__,
      "dataset": config.dataset, "condition": config.model.condition,
      "prior": config.model.prior, "width": config.model.width,
      "batch_size": config.batch_size, "compute_dtype": config.compute_dtype,
      "fast_paths": config.fast_paths,
      # What the steps compile with (the CPU fast paths' options, or none).
      "compiler_options": dict(train_steps.step_compiler_options(
          models.ModelSpec.from_config(config), config.batch_size)),
      "malloc": malloc.malloc_library(),
  }


def run_benchmark(config: ml_collections.ConfigDict, *, repeats: int = 5, warmup: int = 1,
                  loop_steps: int = 20, loop_log_every: int = 0,
                  matmul_size: int = 0) -> dict[str, Any]:
  """Runs every measurement; returns the results as a JSON-serialisable dict."""
  if repeats < 1 or warmup < 0 or loop_steps < 0:
    raise ValueError(f"Need repeats >= 1, warmup >= 0 and loop_steps >= 0; got {repeats}, "
                     f"{warmup}, {loop_steps}.")
  config_validation.validate_config(config)  # before anything compiles
  backend.from_config(config).configure_process()  # as train_and_evaluate does
  # Exactly the loop's shardings and steps, so the loop reuses the executables compiled here.
  state_sharding, batch_sharding = train.create_mesh_shardings(config)
  steps = train.make_loop_steps(config, state_sharding, batch_sharding)
  aae_jit, prior_jit = steps.aae_phase, steps.prior_phase
  init_key, batch_key, step_key = jax.random.split(jax.random.key(config.seed), 3)
  states = lpaae_jax.create_states(config, init_key, state_sharding)
  batch = random_batch(config, batch_key, batch_sharding)

  aae, aae_compile_s = compile_timed(aae_jit, states, batch, step_key)
  prior, prior_compile_s = compile_timed(prior_jit, states, batch, step_key)
  flops = {phase: model_flops(step_jit, config, batch, step_key, state_sharding)
           for phase, step_jit in (("aae", aae_jit), ("prior", prior_jit))}
  executed_flops = {"aae": flops_of(aae), "prior": flops_of(prior)}
  logging.info("Compiled the steps in %.1f s + %.1f s; timing %d + %d repetitions.",
               aae_compile_s, prior_compile_s, warmup, repeats)
  seconds, states = time_steps(aae, prior, states, batch, step_key, repeats=repeats,
                               warmup=warmup)
  for counts in (flops, executed_flops):
    counts["iteration"] = (None if None in counts.values() else counts["aae"] + counts["prior"])
  compile_s = {"aae": aae_compile_s, "prior": prior_compile_s,
               "iteration": aae_compile_s + prior_compile_s}
  steps_per_jit = config.steps_per_jit
  if steps_per_jit > 1:
    # The call the loop makes: compiled here, so the loop's timed intervals never compile.
    multi_jit = steps.iterations
    batches = random_batch(config, batch_key, train_steps.stacked_sharding(batch_sharding),
                           num_stacked=steps_per_jit)
    multi, compile_s["fused"] = compile_timed(multi_jit, states, batches, step_key, 0)
    seconds["fused"], states = time_fused(multi, states, batches, step_key, repeats=repeats,
                                          warmup=warmup)
    for counts in (flops, executed_flops):
      counts["fused"] = counts["iteration"]  # per iteration: the same arithmetic
    logging.info("Compiled the fused call of %d iterations in %.1f s.", steps_per_jit,
                 compile_s["fused"])
  del states
  size = matmul_size or (2048 if jax.default_backend() == "cpu" else 8192)
  matmul = matmul_throughput(size, matmul_dtype(config), max(repeats, 5))
  logging.info("Timed the steps and a %dx%d matmul.", size, size)
  results = {
      "environment": environment(config), "repeats": repeats, "warmup": warmup,
      "steps_per_jit": steps_per_jit,
      "phases": phase_rows(seconds, compile_s, flops, executed_flops, config.batch_size,
                           matmul["gflops_per_sec"] * 1e9),
      "matmul": matmul,
  }
  results["memory"] = peak_memory()  # before the loop: the steps' own footprint

  pure = results["phases"]["fused" if steps_per_jit > 1 else "iteration"]["images_per_sec"]
  loop = {"steps": loop_steps, "images_per_sec": None}
  if loop_steps > 0:
    loop = time_training_loop(
        config, loop_steps,
        loop_log_every or default_loop_log_every(loop_steps, steps_per_jit))
  loop["pure_images_per_sec"] = pure
  loop_rate = loop["images_per_sec"]
  loop["overhead"] = None if loop_rate is None else 1.0 - loop_rate / pure
  results["loop"] = loop
  return results


# ----------------------------------------------------------------------------- report


def _fmt(value, spec: str) -> str:
  return "n/a" if value is None else format(value, spec)


def format_table(results: dict[str, Any]) -> str:
  env, matmul, loop, memory = (results["environment"], results["matmul"], results["loop"],
                               results["memory"])
  lines = [
      f"device: {env['device_kind']} x{env['num_devices']} (backend {env['backend']}), "
      f"jax {env['jax_version']}",
      f"config: {env['dataset']} {env['condition']}/{env['prior']}, width {env['width']}, "
      f"batch {env['batch_size']}, compute_dtype {env['compute_dtype']}, steps_per_jit "
      f"{results['steps_per_jit']}; median of {results['repeats']} after "
      f"{results['warmup']} warm-up",
      f"fast_paths {env['fast_paths']}, compiler options {env['compiler_options'] or 'none'}"
      f", malloc {env['malloc']}",
      "",
      f"{'phase':<10}{'ms':>11}{'images/s':>11}{'compile s':>11}{'GFLOP':>10}"
      f"{'GFLOP/s':>10}{'roofline':>10}",
  ]
  for phase, row in results["phases"].items():
    lines.append(
        f"{phase:<10}{_fmt(row['ms'], '11.1f')}{_fmt(row['images_per_sec'], '11.1f')}"
        f"{_fmt(row['compile_s'], '11.1f')}{_fmt(row['gflops'], '10.2f')}"
        f"{_fmt(row['achieved_gflops_per_sec'], '10.1f')}"
        f"{_fmt(row['roofline_fraction'], '10.3f')}")
  if "fused" in results["phases"]:
    lines.append(f"(fused: {results['steps_per_jit']} iterations per call; ms, images/s, "
                 "GFLOP per iteration)")
  executed = results["phases"]["iteration"].get("executed_gflops")
  lines.append("(GFLOP: the model's, as direct convolutions; the executables' own: "
               f"{_fmt(executed, '.2f')} per iteration)")
  lines += [
      "",
      f"matmul {matmul['n']}x{matmul['n']} {matmul['dtype']}: {matmul['ms']:.1f} ms, "
      f"{matmul['gflops_per_sec']:.1f} GFLOP/s (the roofline's peak)",
      f"training loop: {loop['steps']} steps"
      + (f" ({loop.get('data')} data, log every {loop.get('log_every')}, "
         f"{loop.get('intervals')} steady intervals)" if loop["steps"] else " (skipped)")
      + f": {_fmt(loop['images_per_sec'], '.1f')} images/s vs pure "
      f"{_fmt(loop['pure_images_per_sec'], '.1f')} -> overhead "
      + ("n/a" if loop["overhead"] is None else f"{100 * loop['overhead']:.1f}%"),
      f"memory: peak host RSS {_fmt(memory['peak_host_rss_mib'], '.0f')} MiB, peak device "
      f"{_fmt(memory['peak_device_mib'], '.0f')} MiB",
  ]
  return "\n".join(lines)


def run_and_report(config: ml_collections.ConfigDict, json_path: Optional[str] = None,
                   print_fn: Callable[[str], None] = print, **kwargs) -> dict[str, Any]:
  """run_benchmark, then prints the table and writes the JSON (when json_path is set)."""
  results = run_benchmark(config, **kwargs)
  print_fn(format_table(results))
  if json_path:
    with open(json_path, "w") as f:
      json.dump(results, f, indent=2)
  return results


def resolve_config(config: Optional[ml_collections.ConfigDict],
                   workdir: Optional[str]) -> ml_collections.ConfigDict:
  """--config when given, else the stored config of --workdir's run."""
  if config is not None:
    return config
  if workdir is None:
    raise config_validation.ConfigError("Pass --config=<config file> or --workdir=<a training "
                                        "workdir> (its stored config.json is used).")
  return provenance.load_config(workdir)


def main(argv, cli_flags: dict):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  values = {name: flag.value for name, flag in cli_flags.items()}
  config = resolve_config(values.pop("config"), values.pop("workdir"))
  run_and_report(config, values.pop("json"), **values)


def run() -> None:
  """The `lpaae-benchmark` command (python -m lpaae_jax.benchmark)."""
  cli_flags = _define_flags()
  cli.run(lambda argv: main(argv, cli_flags))


if __name__ == "__main__":
  run()
