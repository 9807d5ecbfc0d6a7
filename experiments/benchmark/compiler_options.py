r"""Whole training iterations under several XLA:CPU compiler-option sets, alternating.

  python -m experiments.benchmark.compiler_options --config=configs/cifar10.py:supervised \
      [--config.model.width=16] [--rounds=7] [--variants=xla_defaults,ours,no_reductions] \
      [--keep_freed_memory]

Compiles both phase steps of the config once per variant (`jax.jit(...,
compiler_options=...)`, the CPU formulations of `config.fast_paths` as configured) and
times full iterations (AAE phase + prior phase) round-robin, one per variant per round, so
that this machine's drift (tens of percent within minutes) hits every variant alike.
Prints each variant's median, per-round times and minor page faults per iteration. The
variants are YNNPACK's fusion types and how XLA lays out the temporaries: XLA:CPU's default
hands YNNPACK every convolution, dots, elementwise fusions and reductions and allocates an
execution's temporaries as one block; `ours` (`train_steps.step_compiler_options`) gives
YNNPACK dots, elementwise fusions (with the convolutions they consume, e.g. conv + bias)
and reductions, the other convolutions staying XLA's own (Eigen), and splits the
temporaries into heaps of `cpu.compiler.TEMP_HEAP_BYTES` (or the largest activation);
`one_temp_block` is ours without that split, `no_reductions` also without the reductions
(XLA emits bias gradients as reduce-windows), `dots_only` also without the elementwise
fusions. `concurrency_scheduler`, `onednn_convs` and `ynn_convs` are ours plus XLA's
concurrency-optimised scheduler, oneDNN's or YNNPACK's stand-alone convolutions.
`--keep_freed_memory` first tells glibc's malloc to keep freed memory, as training does
with the CPU fast paths (`lpaae_jax/cpu/malloc.py`); by default the process runs with the
malloc it was started with.
"""

import functools
import resource
import statistics
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

import lpaae_jax
from lpaae_jax import benchmark
from lpaae_jax import models
from lpaae_jax import train_steps
from lpaae_jax.cpu import compiler
from lpaae_jax.cpu import malloc

FLAGS = flags.FLAGS

_YNN = "xla_cpu_experimental_ynn_fusion_type"
VARIANTS = {
    "xla_defaults": {},
    "ours": None,  # train_steps.step_compiler_options of the config
    "one_temp_block": dict(compiler.OPTIONS),
    "no_reductions": {_YNN: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_ELTWISE"},
    "dots_only": {_YNN: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},
    "no_ynnpack": {_YNN: "LIBRARY_FUSION_TYPE_INVALID"},
    # Ours plus one more option each (filled in by `variant_options`).
    "concurrency_scheduler": {"xla_cpu_enable_concurrency_optimized_scheduler": True},
    "onednn_convs": {"xla_cpu_experimental_onednn_fusion_type":
                     "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
    "ynn_convs": {_YNN: "+LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
}
_ON_TOP_OF_OURS = ("concurrency_scheduler", "onednn_convs", "ynn_convs")


def variant_options(name: str, ours: dict) -> dict:
  """A variant's compiler options: VARIANTS[name], where `ours` is the config's own; the
  _ON_TOP_OF_OURS variants add theirs to ours ("+..." appends to our YNNPACK fusion types)."""
  if name == "ours":
    return ours
  if name not in _ON_TOP_OF_OURS:
    return VARIANTS[name]
  options = dict(ours)
  for option, value in VARIANTS[name].items():
    if isinstance(value, str) and value.startswith("+"):
      value = f"{options[option]},{value[1:]}" if options.get(option) else value[1:]
    options[option] = value
  return options


def define_flags():
  """The command's flags (defined when run, so that tests can import `variant_options`)."""
  config_flags.DEFINE_config_file("config", None, "Training config file.")
  flags.DEFINE_integer("rounds", 7, "Timed iterations per variant (round-robin).")
  flags.DEFINE_list("variants", ["xla_defaults", "ours", "one_temp_block", "no_reductions",
                                  "dots_only", "no_ynnpack"],
                    "Option sets to compare (keys of VARIANTS).")
  flags.DEFINE_bool("keep_freed_memory", False, "Tell glibc's malloc to keep freed memory "
                    "first (cpu/malloc.py, as training does on CPU).")


def main(argv):
  del argv
  config = FLAGS.config
  unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
  if unknown:
    raise app.UsageError(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}.")
  if FLAGS.keep_freed_memory and not malloc.keep_freed_memory():
    raise app.UsageError("--keep_freed_memory: this process has no glibc malloc to tell.")
  hp = train_steps.StepHyperparams.from_config(config)
  aae, prior = (functools.partial(step, hp=hp)
                for step in (train_steps.aae_phase_step, train_steps.prior_phase_step))
  states = lpaae_jax.create_states(config, jax.random.key(0))
  batch = benchmark.random_batch(config, jax.random.key(2), sharding=None)
  key = jax.random.key(1)
  print(f"{config.dataset} width {config.model.width} batch {config.batch_size}, "
        f"fast_paths={config.fast_paths}, jax {jax.__version__} on {jax.default_backend()}")
  ours = dict(train_steps.step_compiler_options(models.ModelSpec.from_config(config),
                                              config.batch_size))
  compiled, current = {}, {}
  for name in FLAGS.variants:
    options = variant_options(name, ours)
    start = time.perf_counter()
    compiled[name] = [jax.jit(step, compiler_options=options or None).lower(
        states, batch, key).compile() for step in (aae, prior)]
    print(f"{name:<14} compiled in {time.perf_counter() - start:5.1f} s  {options}",
          flush=True)
    current[name] = states
  times = {name: [] for name in compiled}
  faults = dict.fromkeys(compiled, 0)
  for round_index in range(FLAGS.rounds + 1):  # round 0 warms up
    for name, steps in compiled.items():
      faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      start = time.perf_counter()
      state = current[name]
      for step in steps:
        state, _ = step(state, batch, key)
      jax.block_until_ready(state)
      current[name] = state
      if round_index:
        times[name].append(time.perf_counter() - start)
        faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
  for name, seconds in times.items():
    print(f"{name:<14} median {1e3 * statistics.median(seconds):7.1f} ms/iteration   "
          f"{faults[name] / FLAGS.rounds:7.0f} page faults/iteration   "
          f"rounds {[round(1e3 * s) for s in seconds]}")


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["config"])
  app.run(main)
