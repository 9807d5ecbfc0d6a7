r"""Whole iterations of the code as it is against one of conv.py's CPU formulations replaced
(`kernel_gradients_on_off.RULES`), both compiled in one process, iterations interleaved.

  python -m experiments.benchmark.in_process_ab --off=thin_off \
      --config=configs/cifar10.py:supervised --config.model.width=16 [--iterations=16]

Separate processes (`fast_path_ab.sh`) differ by more than most changes are worth: at width
16 a third of the processes ran ~25% slower than the rest whatever their variant, and the
machine drifts between hours. Here both variants share the process, its heap and the
minute; each timed iteration (both phases, as training dispatches them) of one variant sits
next to one of the other, in ABBA order. Prints each variant's median and mean ms per
iteration, in how many adjacent pairs the code as it is was faster, and the median of the
per-pair ratios (as is / replaced; below 1: the code as it is is faster).
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

import lpaae_jax
from experiments.benchmark import kernel_gradients_on_off
from lpaae_jax import benchmark
from lpaae_jax import cpu_malloc
from lpaae_jax import models
from lpaae_jax import train
from lpaae_jax import train_steps

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.",
                                          lock_config=True)
_OFF = flags.DEFINE_enum("off", None, [r for r in kernel_gradients_on_off.RULES if r != "on"],
                         "The kernel_gradients_on_off rule of the other variant.")
_ITERATIONS = flags.DEFINE_integer("iterations", 16, "Timed iterations per variant.")


def compile_variant(config, rule: str, state_sharding, batch_sharding, batch, key):
  """(aae, prior) executables and fresh states, traced with `rule`'s replacement in conv."""
  # The replacement acts when the steps are traced. make_loop_steps returns cached jitted
  # functions, whose traces jax would reuse for the second variant: clear them first.
  jax.clear_caches()
  with kernel_gradients_on_off.rule_applied(rule):
    states = lpaae_jax.create_states(config, jax.random.key(config.seed), state_sharding)
    steps = train.make_loop_steps(config, state_sharding, batch_sharding)
    executables = [step.lower(states, batch, key).compile()
                   for step in (steps.aae_phase, steps.prior_phase)]
  return executables, states


def summary(ms: dict[str, list[float]], this: str, other: str) -> str:
  """The variants' medians and means, pair wins and median per-pair ratio, as text."""
  pad = max(map(len, ms))
  lines = [f"  {name:<{pad}} median {statistics.median(t):8.1f} ms, mean {statistics.mean(t):8.1f}"
           for name, t in ms.items()]
  ratios = np.asarray(ms[this]) / np.asarray(ms[other])
  lines.append(f"  {this} faster in {int((ratios < 1).sum())} of {len(ratios)} adjacent "
               f"pairs; median ratio {this}/{other} {np.median(ratios):.3f}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if not models.cpu_fast_paths(config.fast_paths):
    raise app.UsageError("The rules replace CPU formulations: run with fast_paths auto "
                         "(on the CPU backend) or cpu.")
  cpu_malloc.keep_freed_memory()  # as training and the benchmark do
  state_sharding, batch_sharding = train.create_mesh_shardings(config)
  batch_key, step_key = jax.random.split(jax.random.key(config.seed + 1))
  batch = benchmark.random_batch(config, batch_key, batch_sharding)
  variants = {name: list(compile_variant(config, name, state_sharding, batch_sharding, batch,
                                         step_key))
              for name in ("on", _OFF.value)}
  if variants["on"][0][0].as_text() == variants[_OFF.value][0][0].as_text():
    raise app.UsageError(f"{_OFF.value} changes nothing in this config's compiled steps.")
  ms = {name: [] for name in variants}
  for iteration in range(1 + _ITERATIONS.value):  # the first, untimed, warms both up
    names = list(variants) if iteration % 2 else list(variants)[::-1]
    for name in names:
      executables, states = variants[name]
      keys = train_steps.iteration_keys(step_key, iteration)
      start = time.perf_counter()
      for step, key in zip(executables, keys):
        states, metrics = step(states, batch, key)
      jax.block_until_ready((states, metrics))
      variants[name][1] = states
      if iteration:
        ms[name].append(1e3 * (time.perf_counter() - start))
  print(f"{config.dataset} width {config.model.width} batch {config.batch_size}, jax "
        f"{jax.__version__} on {jax.devices()[0].device_kind}: the code as it is ('on') and "
        f"with {_OFF.value}, {_ITERATIONS.value} interleaved iterations each")
  print(summary(ms, "on", _OFF.value))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "off"])
  app.run(main)
