"""Shared test fixtures and the session's compilation settings (helpers: tests/helpers.py).

Real data and weights come from environment variables (never hard-coded paths):
LPAAE_DATA_DIR (a TFDS data_dir with mnist and cifar10) and LPAAE_INCEPTION_DIR. Tests
that need them skip when unset, except under CI (env CI set), where they fail.

Most of the suite's time is XLA compiling tiny models, so by default every compile skips
XLA's expensive optimisations (`jax_disable_most_optimizations`; also in the subprocesses,
which inherit the environment): measured on tests/train_steps_test.py, 477 -> 336 s. A
module whose time is spent running, not compiling, sets `FULL_XLA_OPTIMIZATION = True`.
XLA:CPU's legacy loop emitters (`--xla_cpu_use_fusion_emitters=false` in XLA_FLAGS, also
inherited) compile these graphs about twice as fast as its default fusion emitters
(measured on tests/train_steps_test.py: 166 -> 96 s); code that runs long compiles with
`RUN_FAST_COMPILER_OPTIONS` instead.
"""

import contextlib
import fcntl
import gc
import os
import pathlib
import shutil
import sys
import tempfile

os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "true")  # before jax reads it
# One OpenMP thread (sklearn's t-SNE): with the other worker's XLA busy on both cores its
# spinning threads stall (measured: a 0.6 s t-SNE test took 20-34 s in the suite, 5.5 s
# beside one training process, 0.7 s with one thread).
os.environ.setdefault("OMP_NUM_THREADS", "1")
_FAST_COMPILE_XLA_FLAG = "--xla_cpu_use_fusion_emitters=false"
if _FAST_COMPILE_XLA_FLAG not in os.environ.get("XLA_FLAGS", ""):  # before XLA parses it
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE_XLA_FLAG}".strip()

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from lpaae_jax import train_steps  # pylint: disable=g-import-not-at-top

# A persistent compilation cache for the session, shared with the training subprocesses of
# the kill/resume tests (JAX_COMPILATION_CACHE_DIR), which then start without recompiling.
COMPILATION_CACHE_DIR = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="lpaae_jax_cache_"))
jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

# The modules that take longest (measured, in this order), scheduled first: the two workers
# then finish together instead of one waiting for a long module that started last.
_LONGEST_FIRST = ("fidelity_test", "scale_out_test", "reliability_test", "evaluation_test",
                  "train_steps_test", "experiments_test", "train_test", "cifar10_model_test",
                  "cli_test")


def pytest_configure(config):
  # pytest-xdist's --dist loadfile otherwise orders the files by their number of tests.
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  rank = {name: index for index, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


# Opt-in: LPAAE_COMPILE_LOG=<file> appends a line per XLA compilation or persistent-cache
# load (test, function, seconds): where the suite's time goes.
if os.environ.get("LPAAE_COMPILE_LOG"):
  def _log_compile(event, duration, fun_name="", **_):
    if event == "/jax/core/compile/backend_compile_duration":
      test = os.environ.get("PYTEST_CURRENT_TEST", "-").split(" ")[0]
      with open(os.environ["LPAAE_COMPILE_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{test}\t{fun_name}\t{duration:.2f}\n")
  jax.monitoring.register_event_duration_secs_listener(_log_compile)


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


@contextlib.contextmanager
def full_xla_optimization():
  """Compiles inside run at XLA's full optimisation (see the module docstring)."""
  disabled = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", disabled)


@pytest.fixture(scope="session")
def trained_judge_dir(real_data_dir, tmp_path_factory):
  """A small MNIST judge (150 steps, about 0.9 test accuracy), trained once per session:
  under pytest-xdist the first worker to need it trains it, the other waits and loads it."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # the session's directory, shared by its workers
  judge_dir = root / "shared_judge"
  with open(root / "shared_judge.lock", "w", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    if not judge_dir.is_dir():
      _train_judge(real_data_dir, judge_dir)
  return str(judge_dir)


def _train_judge(real_data_dir, judge_dir: pathlib.Path) -> None:
  from lpaae_jax.evaluation import judge  # pylint: disable=g-import-not-at-top
  from tests.helpers import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config("supervised", data_dir=str(real_data_dir), download=False)
  with full_xla_optimization():  # 150 steps: running, not compiling (27 -> 17 s)
    params, info = judge.train_judge(config, num_steps=150, batch_size=32, num_test=2000,
                                     log_every=0)
  partial_dir = judge_dir.with_name(judge_dir.name + ".partial")
  shutil.rmtree(partial_dir, ignore_errors=True)  # left by a worker that crashed
  partial_dir.mkdir()
  judge.save_judge(str(partial_dir), params, info)
  partial_dir.rename(judge_dir)  # complete or absent


@pytest.fixture(scope="module", autouse=True)
def xla_optimization(request):
  """Full XLA optimisation for the modules that ask for it (see the module docstring)."""
  if not getattr(request.module, "FULL_XLA_OPTIMIZATION", False):
    yield
    return
  with full_xla_optimization():
    yield


@pytest.fixture(scope="session", autouse=True)
def inception_at_full_optimization():
  """InceptionV3 at 299x299 runs far longer than it compiles: 96 images took 21.6 s at the
  suite's setting and 11.4 s at full optimisation (+1.3 s of compile)."""
  from lpaae_jax.evaluation import inception  # pylint: disable=g-import-not-at-top
  make_inception_fn = inception.make_inception_fn

  def make_fully_optimized(*args, **kwargs):
    inception_fn = make_inception_fn(*args, **kwargs)

    def run(images):
      with full_xla_optimization():
        return inception_fn(images)
    return run

  inception.make_inception_fn = make_fully_optimized
  try:
    yield
  finally:
    inception.make_inception_fn = make_inception_fn


@pytest.fixture(scope="module", autouse=True)
def release_compiled_code():
  """Frees every compiled executable after each test module.

  Each XLA:CPU executable maps its kernels' code into the process; the whole suite in one
  process compiled enough to pass the kernel's vm.max_map_count (65530 maps) and crash in
  XLA's compiler. Executables the next module needs again come back from the persistent
  compilation cache above."""
  yield
  train_steps._jitted_train_steps.cache_clear()
  jax.clear_caches()
  gc.collect()
