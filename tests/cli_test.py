"""The commands end an error we raise on purpose with its one line on stderr and exit code 1,
no traceback (--verbose keeps it); their log drops the libraries' INFO chatter.

The subprocess tests fail before anything compiles (each costs the imports)."""

import errno
import logging
import os
import pathlib
import socket
import subprocess
import sys
import time

from absl import flags
from ml_collections.config_flags import config_flags
import pytest

from lpaae_jax import checkpointing
from lpaae_jax import cli
from lpaae_jax import config_validation
from lpaae_jax import errors
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax import input_pipeline
from lpaae_jax import provenance
from lpaae_jax import train
from lpaae_jax.evaluation import judge
from lpaae_jax.configs import test as test_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEST_CONFIG = str(ROOT / "configs" / "test.py")
# What tfds's downloader spends retrying without a network (10 retries with backoff) is
# 3.5 minutes; a failure in seconds plus the imports stays far below.
NO_NETWORK_LIMIT_S = 90
_our_error = errors.innermost
_unloadable_config_file = cli._unloadable_config_file  # pylint: disable=protected-access


def _command(module: str, *args: str, cwd: pathlib.Path, env=None):
  # From another working directory, with the checkout on PYTHONPATH as an installed package
  # would be: the config files must load by path.
  env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  start = time.perf_counter()
  result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
  return result, time.perf_counter() - start


def _assert_one_line_error(result, *fragments: str) -> str:
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1].startswith("error: "), result.stderr[-3000:]
  assert sum("error: " in line for line in lines) == 1
  for fragment in fragments:
    assert fragment in lines[-1], lines[-1]
  return lines[-1]


def test_train_with_a_bad_config_value_prints_one_line(tmp_path):
  result, _ = _command("lpaae_jax.main", f"--config={TEST_CONFIG}",
                       "--config.model.prior=learnt", f"--workdir={tmp_path / 'run'}",
                       cwd=tmp_path, env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"))
  lines = result.stderr.splitlines()
  imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
  result.stderr = "\n".join(line for line in lines if not line.startswith("import time:"))
  _assert_one_line_error(result, "config.model.prior='learnt'", "learned, fixed")
  assert not (tmp_path / "run").exists()  # validated before the workdir is touched
  assert "lpaae_jax.config_validation" in imported
  assert "tensorflow" not in imported  # ... and before the training modules load TensorFlow


def _closed_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def _unreachable_network_env() -> dict[str, str]:
  """Every HTTP(S) request goes to a proxy port nobody listens on: no network, anywhere."""
  proxy = f"http://127.0.0.1:{_closed_port()}"
  env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "all_proxy")}
  for name in ("http_proxy", "https_proxy"):
    env[name] = env[name.upper()] = proxy
  return env


def test_train_without_network_fails_in_seconds_with_the_download_message(tmp_path):
  data_dir = tmp_path / "tfds"
  result, seconds = _command("lpaae_jax.main", f"--config={TEST_CONFIG}",
                             f"--config.data_dir={data_dir}", "--config.download=True",
                             f"--workdir={tmp_path / 'run'}", cwd=tmp_path,
                             env=_unreachable_network_env())
  _assert_one_line_error(result, "Could not download dataset 'mnist'", str(data_dir),
                         "ConnectionError", f"tfds build mnist --data_dir={data_dir}")
  assert seconds < NO_NETWORK_LIMIT_S
  assert not (tmp_path / "run").exists()  # the failed start leaves no empty workdir


def test_a_cloud_workdir_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
  result, _ = _command("lpaae_jax.main", f"--config={TEST_CONFIG}", "--workdir=gs://bucket/run",
                       cwd=tmp_path)
  _assert_one_line_error(result, "--workdir=gs://bucket/run: gs:// paths are not supported",
                         "gcsfuse")
  assert not list(tmp_path.iterdir())  # no local "gs:" directory
  monkeypatch.chdir(tmp_path)
  for command in (lambda: evaluate.evaluate_workdir(None, "s3://bucket/run"),
                  lambda: provenance.load_config("gs://bucket/run")):
    with pytest.raises(file_utils.UnsupportedPathError, match="not supported yet"):
      command()
  assert not list(tmp_path.iterdir())


def test_evaluate_without_checkpoint_prints_one_line_and_creates_nothing(tmp_path):
  result, _ = _command("lpaae_jax.evaluate", f"--config={TEST_CONFIG}",
                       f"--workdir={tmp_path / 'typo'}", cwd=tmp_path)
  line = _assert_one_line_error(result, "No checkpoint in", str(tmp_path / "typo"),
                                "train first")
  assert result.stderr.strip() == line  # no TensorFlow start-up banner before it
  assert not (tmp_path / "typo").exists()


def test_evaluate_without_config_uses_the_stored_one_or_names_it(tmp_path):
  # --config is optional: the workdir's config.json (written by training) stands in.
  result, _ = _command("lpaae_jax.evaluate", f"--workdir={tmp_path / 'old_run'}", cwd=tmp_path)
  _assert_one_line_error(result, "No stored config", str(tmp_path / "old_run" / "config.json"),
                         "--config=")
  assert not (tmp_path / "old_run").exists()


def test_a_misspelt_config_field_is_one_line_naming_the_nearest_field(tmp_path):
  result, _ = _command("lpaae_jax.main", f"--config={TEST_CONFIG}", "--config.widht=32",
                       f"--workdir={tmp_path / 'run'}", cwd=tmp_path)
  _assert_one_line_error(result, "--config.widht: the config has no field widht",
                         "did you mean --config.model.width?")
  assert not (tmp_path / "run").exists()


def test_evaluate_overrides_the_stored_config(tmp_path):
  workdir = tmp_path / "run"
  provenance.write_config(str(workdir), test_config.get_config())
  # The override parses against the stored config: a typo there names the stored field.
  result, _ = _command("lpaae_jax.evaluate", f"--workdir={workdir}",
                       "--config.eval.use_inceptoin=False", cwd=tmp_path)
  _assert_one_line_error(result, "did you mean --config.eval.use_inception?")


def test_verbose_keeps_the_traceback(tmp_path):
  # The benchmark: also shows it runs through the same entry point as the other commands.
  result, _ = _command("lpaae_jax.benchmark", f"--config={TEST_CONFIG}",
                       "--config.optim.learning_rate=-1", "--verbose", cwd=tmp_path)
  assert result.returncode != 0
  assert "Traceback" in result.stderr
  assert "ConfigError: config.optim.learning_rate=-1" in result.stderr


# ------------------------------------------------------------------- in process, cheap


@pytest.mark.parametrize("error_class, builtin", [
    (config_validation.ConfigError, ValueError),
    (input_pipeline.DatasetUnavailableError, RuntimeError),
    (train.WorkdirError, OSError),
    (train.NonFiniteLossError, FloatingPointError),
    (checkpointing.CheckpointMismatchError, ValueError),
    (checkpointing.NoUsableCheckpointError, RuntimeError),
    (checkpointing.NoCheckpointError, FileNotFoundError),
    (checkpointing.CheckpointSaveError, OSError),
    (checkpointing.DiskFullError, OSError),
    (provenance.StoredConfigError, FileNotFoundError),
    (file_utils.UnsupportedPathError, ValueError),
    (judge.JudgeUnavailableError, RuntimeError),
])
def test_every_error_raised_on_purpose_is_shown_as_one_line(error_class, builtin):
  # The commands show an LpaaeError's message alone; callers may still catch the builtin.
  assert issubclass(error_class, errors.LpaaeError) and issubclass(error_class, builtin)


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # ml_collections'
def test_a_config_file_that_does_not_exist_is_one_error():
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=flag_values)
  flag_values(["lpaae-train", "--config=configs/absent.py"])
  error = _unloadable_config_file("config", flag_values["config"])
  assert isinstance(error, config_validation.ConfigError)
  assert "--config=configs/absent.py: no such file in the working directory" in str(error)
  flag_values(["lpaae-train", f"--config={TEST_CONFIG}"])
  assert _unloadable_config_file("config", flag_values["config"]) is None


def test_our_error_is_found_inside_the_flag_parsers_re_raises():
  # ml_collections re-raises a config file's ValueError with the traceback as its message,
  # and absl wraps that in a flag error: the original carries the one-line message.
  original = config_validation.ConfigError("Unknown config variant 'semi': ...")
  re_raised = config_validation.ConfigError("Error whilst parsing config file:\n\nTraceback")
  re_raised.__context__ = original  # raised while handling it, as Python records it
  flag_error = flags.IllegalFlagValueError(f"flag --config=x.py:semi: {re_raised}")
  flag_error.__context__ = re_raised
  assert _our_error(flag_error) is original
  assert _our_error(ValueError("a bug")) is None


def _record(directory: str, level: int, exc_info=None) -> logging.LogRecord:
  return logging.LogRecord("absl", level, os.path.join(directory, "module.py"), 1, "message",
                           None, exc_info)


def test_log_filter_keeps_ours_and_clus_lines_and_the_libraries_warnings(monkeypatch):
  import clu  # pylint: disable=g-import-not-at-top
  import lpaae_jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(cli.LibraryLogFilter, "after_error", False)
  keep = cli.LibraryLogFilter().filter
  ours, clus = (os.path.dirname(m.__file__) for m in (lpaae_jax, clu))
  orbax = os.path.dirname(orbax.checkpoint.__file__)
  assert keep(_record(ours, logging.INFO)) and keep(_record(clus, logging.INFO))
  assert not keep(_record(orbax, logging.INFO))  # CheckpointManagerOptions dumps, ...
  try:
    raise ValueError("RESOURCE_EXHAUSTED")
  except ValueError:
    failure = _record(orbax, logging.ERROR, sys.exc_info())
  assert keep(failure) and failure.exc_info is None  # the line without its traceback
  try:
    raise ValueError("No space left on device")
  except ValueError:
    writer_failure = _record(clus, logging.ERROR, sys.exc_info())  # its summary writer's
  assert keep(writer_failure) and writer_failure.exc_info is None
  monkeypatch.setattr(cli.LibraryLogFilter, "after_error", True)
  # After the error line nothing more, ours included (the summary writer's last scalars).
  assert not keep(_record(orbax, logging.ERROR)) and not keep(_record(ours, logging.INFO))


# ----------------------------------------------------------------- a full disk on saving

_TENSORSTORE_ENOSPC = ('RESOURCE_EXHAUSTED: Error writing local file "/w/checkpoints/10.orbax-'
                       'checkpoint-tmp/_sharding": Failed to write 45127 bytes to file 5: No '
                       "space left on device [os_error_code='28']")


@pytest.mark.parametrize("error, full", [
    (ValueError(_TENSORSTORE_ENOSPC), True),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), True),
    (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), True),
    (OSError(errno.EACCES, os.strerror(errno.EACCES)), False),
    (ValueError("INVALID_ARGUMENT: bad shape"), False),
])
def test_out_of_space_is_recognised(error, full):
  assert checkpointing.is_out_of_space(error) == full
  try:
    try:
      raise error
    except Exception as inner:  # pylint: disable=broad-except
      raise RuntimeError("Save Finalize thread failed") from inner
  except RuntimeError as outer:
    assert checkpointing.is_out_of_space(outer) == full  # found through the chain


class _FullDiskManager:
  """The parts of an Orbax CheckpointManager `save` uses; its save finds the disk full."""

  def __init__(self, error, directory):
    self._error, self.directory = error, directory

  def save(self, step, args):
    del step, args
    raise self._error


@pytest.mark.parametrize("committed, kept", [
    (["5", "10.orbax-checkpoint-tmp"], "the newest complete checkpoint, {}/5 (step 5), is intact"),
    ([], "no checkpoint is complete yet")])
def test_full_disk_on_saving_names_the_directory_and_the_newest_checkpoint(
    committed, kept, monkeypatch, tmp_path):
  monkeypatch.setattr(checkpointing, "run_metadata", lambda config, step: {})
  directory = tmp_path / "checkpoints"
  for name in committed:  # a committed step, and the save that failed half-way
    (directory / name).mkdir(parents=True)
  manager = _FullDiskManager(ValueError(_TENSORSTORE_ENOSPC), str(directory))
  with pytest.raises(checkpointing.CheckpointSaveError) as excinfo:
    checkpointing.save(manager, 10, states={}, config=None)
  message = str(excinfo.value)
  assert "\n" not in message
  assert message.startswith(f"No space left on the device of {directory} while writing a "
                            "checkpoint")
  assert kept.format(directory) in message and "rerun the same command" in message
  assert isinstance(excinfo.value, OSError)


def test_a_full_disk_anywhere_in_the_run_is_one_error_and_ours_pass_through(tmp_path):
  # E.g. clu's asynchronous summary writer: its AsyncError comes from TensorFlow's ENOSPC.
  with pytest.raises(checkpointing.DiskFullError, match="while writing the summaries: no "):
    with checkpointing.reporting_full_disk(str(tmp_path), "the summaries"):
      raise RuntimeError("Error in producer thread for AsyncWriter") from OSError(
          errno.ENOSPC, os.strerror(errno.ENOSPC))
  ours = checkpointing.CheckpointSaveError("No space left ... while writing a checkpoint")
  with pytest.raises(RuntimeError) as excinfo:  # a clean-up failing while ours propagates
    with checkpointing.reporting_full_disk(str(tmp_path), "the summaries"):
      try:
        raise ours
      finally:
        raise RuntimeError("No space left on device")
  assert errors.innermost(excinfo.value) is ours  # what the commands then show


_FULL_DISK_COMMAND = """
import sys, threading, time
from absl import logging
from lpaae_jax import checkpointing, cli

class ClosedLoopCallback:  # as tensorstore's into Orbax's closed loop: an unraisable error
  def __del__(self):
    raise RuntimeError("Event loop is closed")

def main(argv):
  ClosedLoopCallback()
  def background_writer():  # e.g. clu's summary writer, failing again a moment later
    time.sleep(1)
    logging.error("Error in producer thread for AsyncWriter")
    print("Traceback (most recent call last): ...", file=sys.stderr, flush=True)
  threading.Thread(target=background_writer).start()
  try:
    raise checkpointing.CheckpointSaveError("No space left on the device of /w/checkpoints")
  finally:
    raise RuntimeError("AsyncWriter: No space left on device")  # a clean-up failing too

cli.run(main)
"""


def test_a_full_disk_ends_the_command_with_our_line_and_nothing_else(tmp_path):
  result = subprocess.run([sys.executable, "-c", _FULL_DISK_COMMAND], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip() == "error: No space left on the device of /w/checkpoints"
  assert "Traceback" not in result.stderr


def test_other_save_failures_keep_their_own_error(monkeypatch):
  monkeypatch.setattr(checkpointing, "run_metadata", lambda config, step: {})
  with pytest.raises(ValueError, match="INVALID_ARGUMENT"):
    checkpointing.save(_FullDiskManager(ValueError("INVALID_ARGUMENT: x"), "/w/checkpoints"),
                       10, {}, None)
