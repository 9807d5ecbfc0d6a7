"""Shared test fixtures: tiny configs, compiled steps shared across tests, real-data dirs.

Real data and weights come from environment variables (never hard-coded paths):
LPAAE_DATA_DIR (a TFDS data_dir with mnist and cifar10) and LPAAE_INCEPTION_DIR. Tests
that need them skip when unset, except under CI (env CI set), where they fail.
"""

import gc
import os
import pathlib
import sys
import tempfile

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from configs import test as test_config  # pylint: disable=g-import-not-at-top
import lpaae_jax  # pylint: disable=g-import-not-at-top
from lpaae_jax import train_steps  # pylint: disable=g-import-not-at-top

# A persistent compilation cache for the session, shared with the training subprocesses of
# the kill/resume tests (JAX_COMPILATION_CACHE_DIR), which then start without recompiling.
COMPILATION_CACHE_DIR = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="lpaae_jax_cache_"))
jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

VARIANTS = [(c, p) for c in ("none", "supervised", "unsupervised") for p in ("learned", "fixed")]


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


def compiled_steps(condition="none", prior="learned", **overrides):
  """The jitted steps of a tiny variant; make_train_steps shares them (and their
  compilations, the main cost of the suite) across every test that uses equal settings."""
  return lpaae_jax.make_train_steps(tiny_config(condition, prior, **overrides))


def _env_dir(name: str, what: str) -> pathlib.Path:
  value = os.environ.get(name)
  if value and pathlib.Path(value).is_dir():
    return pathlib.Path(value)
  message = f"{what} not available: set {name} (e.g. {name}=../shared/{what.split()[0]})"
  if os.environ.get("CI"):
    pytest.fail(message + " -- required under CI")
  pytest.skip(message)


@pytest.fixture(scope="session")
def real_data_dir() -> pathlib.Path:
  return _env_dir("LPAAE_DATA_DIR", "tfds data")


@pytest.fixture(scope="session")
def inception_dir() -> pathlib.Path:
  return _env_dir("LPAAE_INCEPTION_DIR", "inception weights")


@pytest.fixture(scope="session")
def trained_judge_dir(real_data_dir, tmp_path_factory):
  """A small MNIST judge (150 steps, about 0.9 test accuracy), shared by the session."""
  from lpaae_jax.evaluation import judge  # pylint: disable=g-import-not-at-top
  config = tiny_config("supervised", data_dir=str(real_data_dir), download=False)
  params, info = judge.train_judge(config, num_steps=150, batch_size=32, num_test=2000,
                                   log_every=0)
  out_dir = str(tmp_path_factory.mktemp("judge"))
  judge.save_judge(out_dir, params, info)
  return out_dir


@pytest.fixture(scope="module", autouse=True)
def release_compiled_code():
  """Frees every compiled executable after each test module.

  Each XLA:CPU executable maps its kernels' code into the process; the whole suite in one
  process compiled enough to pass the kernel's vm.max_map_count (65530 maps) and crash in
  XLA's compiler. Executables the next module needs again come back from the persistent
  compilation cache above."""
  yield
  for cached in (train_steps._jitted_steps, train_steps._jitted_multi_step):
    cached.cache_clear()
  jax.clear_caches()
  gc.collect()
