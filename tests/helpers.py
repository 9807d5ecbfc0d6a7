"""What several test modules share: the tiny configs, their compiled steps, batches, state
comparisons and a mocked training run. (Fixtures live in conftest.py.)"""

import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from lpaae_jax.configs import test as test_config
import lpaae_jax
from lpaae_jax import config_validation, evaluate, input_pipeline, train, train_steps

ROOT = pathlib.Path(__file__).resolve().parents[1]
VARIANTS = [(c, p) for c in ("none", "supervised", "unsupervised") for p in ("learned", "fixed")]
# conftest compiles with XLA:CPU's legacy emitters (fast to compile); code that runs for
# minutes compiles with these options: the default fusion emitters, whose code runs ~2x
# faster (measured: 300 width-8 iterations, 126 -> 61 s).
RUN_FAST_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": True}
NETWORKS = config_validation.NETWORKS


def apply_overrides(config, **overrides):
  """Sets dotted config fields, e.g. apply_overrides(config, **{"model.width": 8})."""
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


def tiny_config(condition="none", prior="learned", **overrides):
  """configs/test.py (MNIST, w=4, batch 16) with a setting, a prior and field overrides."""
  return apply_overrides(test_config.get_config(f"{condition},{prior}"), **overrides)


def train_on_real_data(config, num_steps: int):
  """`num_steps` iterations of the library's steps (compiled to run fast) on the config's
  data, from seed 0; the states recalibrated as evaluation uses them."""
  steps = lpaae_jax.make_train_steps(config)
  states = lpaae_jax.create_states(config, jax.random.key(0))
  train_key = jax.random.key(1)
  for step, batch in enumerate(input_pipeline.create_train_iterator(config,
                                                                    end_step=num_steps)):
    aae_key, prior_key = train_steps.iteration_keys(train_key, step)
    if step == 0:
      aae_step = steps.aae_phase.lower(states, batch, aae_key).compile(
          RUN_FAST_COMPILER_OPTIONS)
      prior_step = steps.prior_phase.lower(states, batch, prior_key).compile(
          RUN_FAST_COMPILER_OPTIONS)
    states, _ = aae_step(states, batch, aae_key)
    states, _ = prior_step(states, batch, prior_key)
  return evaluate.recalibrated(config, states)


def reconstruction_and_mean_image_mse(config, states, num: int = 500) -> tuple[float, float]:
  """(reconstruction MSE, the mean test image's MSE) on the first `num` test images."""
  images, _ = input_pipeline.load_split_arrays(config, "test", num=num)
  reconstruction_mse = float(np.mean((np.asarray(lpaae_jax.reconstruct(states, images))
                                      - images)**2))
  return reconstruction_mse, float(np.mean((images - images.mean(axis=0))**2))


def compiled_steps(condition="none", prior="learned", **overrides):
  """The jitted steps of a tiny variant; make_train_steps shares them (and their
  compilations, the main cost of the suite) across every test that uses equal settings."""
  return lpaae_jax.make_train_steps(tiny_config(condition, prior, **overrides))


def subprocess_xla_flags(num_cpu_devices: int = 1) -> str:
  """The suite's XLA_FLAGS (conftest's) for a subprocess with this many CPU devices."""
  flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split()
           if not flag.startswith("--xla_force_host_platform_device_count")]
  if num_cpu_devices > 1:
    flags.append(f"--xla_force_host_platform_device_count={num_cpu_devices}")
  return " ".join(flags)


def random_batch(seed=0, batch_size=16, channels=1):
  rng = np.random.default_rng(seed)
  return {"image": jnp.asarray(rng.uniform(-1, 1, (batch_size, 32, 32, channels)), jnp.float32),
          "label": jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)}


def to_host(tree):
  """A numpy copy: the steps donate their input states."""
  return jax.tree_util.tree_map(np.array, tree)


def leaves_equal(a, b) -> bool:
  leaves_a, tree_a = jax.tree_util.tree_flatten(a)
  leaves_b, tree_b = jax.tree_util.tree_flatten(b)
  return tree_a == tree_b and all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))


def run_config(data_dir, **overrides):
  """The tiny config (same compiled steps as the step tests) for a few logged steps."""
  fields = {"data_dir": str(data_dir), "download": True, "num_train_steps": 4,
            "log_every_steps": 2, "eval_every_steps": 2, "checkpoint_every_steps": 2}
  fields.update(overrides)
  return tiny_config(**fields)


def train_mocked(config, workdir):
  # mock_data makes the 'download' a no-op and serves deterministic random examples.
  with tfds.testing.mock_data(num_examples=64):
    return train.train_and_evaluate(config, str(workdir))


# Fused (steps_per_jit) against single steps: see scale_out_test.py, which measures these.
STATE_RTOL, STATE_ATOL = 1e-4, 1e-5  # only used to count "outside" entries
FUSED_PARAM_MAX_ABS_IN_LR = 12.0  # <= 3 lr per update, 4 updates
FUSED_PARAM_MAX_OUTSIDE_FRACTION = 0.5
BATCH_STATS_ATOL = 1e-2


def state_drift(states_a, states_b, learning_rate) -> dict:
  """Largest parameter and BatchNorm-statistics differences between two runs' states."""
  out = {"param_max_abs_in_lr": 0.0, "param_outside": 0, "param_total": 0, "worst_param": "",
         "batch_stats_max_abs": 0.0}
  for network in NETWORKS:
    a, b = getattr(states_a, network), getattr(states_b, network)
    if b is None:
      continue
    assert int(a.step) == int(b.step), network
    for x, y in zip(jax.tree_util.tree_leaves(a.batch_stats),
                    jax.tree_util.tree_leaves(b.batch_stats)):
      out["batch_stats_max_abs"] = max(out["batch_stats_max_abs"], float(np.abs(x - y).max()))
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a.params)[0],
                            jax.tree_util.tree_leaves(b.params)):
      diff = np.abs(x - y)
      out["param_outside"] += int((diff > STATE_ATOL + STATE_RTOL * np.abs(y)).sum())
      out["param_total"] += int(diff.size)
      if diff.max() / learning_rate > out["param_max_abs_in_lr"]:
        out["param_max_abs_in_lr"] = float(diff.max() / learning_rate)
        out["worst_param"] = network + jax.tree_util.keystr(path)
  return out


def assert_states_close(measured):
  """The fused-vs-single bounds on a `state_drift` result."""
  assert measured["param_max_abs_in_lr"] <= FUSED_PARAM_MAX_ABS_IN_LR, measured
  assert measured["batch_stats_max_abs"] <= BATCH_STATS_ATOL, measured
  assert (measured["param_outside"]
          <= FUSED_PARAM_MAX_OUTSIDE_FRACTION * measured["param_total"]), measured
