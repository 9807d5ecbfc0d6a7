"""Runs survive kills, preemption, damaged checkpoints and bad numbers (issue: reliability)."""

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lpaae_jax
from lpaae_jax import checkpointing
from lpaae_jax import train
from lpaae_jax import train_steps
from tests.helpers import leaves_equal, run_config, tiny_config, to_host, train_mocked

ROOT = pathlib.Path(__file__).resolve().parents[1]


def saved_steps(workdir: pathlib.Path) -> list[int]:
  directory = workdir / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def damage(step_dir: pathlib.Path) -> None:
  """Truncates every file of a saved step, as a disk failure or a bad copy would."""
  for path in step_dir.rglob("*"):
    if path.is_file() and path.name != "_CHECKPOINT_METADATA":
      path.write_bytes(path.read_bytes()[:7])


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
  config = run_config(tmp_path / "data")
  final = to_host(train_mocked(config, tmp_path / "run"))
  assert saved_steps(tmp_path / "run") == [2, 4]
  damage(tmp_path / "run" / "checkpoints" / "4")
  states, step = checkpointing.restore_latest(config, str(tmp_path / "run"))
  assert step == 2
  assert (tmp_path / "run" / "checkpoints_unusable").is_dir()  # moved aside, not deleted
  # Training again redoes steps 3-4 from the good checkpoint and ends where it did.
  resumed = train_mocked(config, tmp_path / "run")
  assert leaves_equal(to_host(resumed), final)


def test_no_usable_checkpoint_is_an_error_unless_reinit(tmp_path):
  config = run_config(tmp_path / "data", num_train_steps=2)
  train_mocked(config, tmp_path / "run")
  damage(tmp_path / "run" / "checkpoints" / "2")
  with pytest.raises(checkpointing.NoUsableCheckpointError, match="config.reinit=True"):
    train_mocked(config, tmp_path / "run")
  config.reinit = True
  train_mocked(config, tmp_path / "run")
  assert saved_steps(tmp_path / "run") == [2]
  assert list(tmp_path.glob("run/checkpoints.unusable-*"))  # the damaged run is kept aside


def test_skip_mode_drops_non_finite_steps_and_counts_them():
  """The guard of config.on_nonfinite='skip', on a toy step: a NaN loss or a NaN update
  returns the input states unchanged and counts the skip."""
  def toy_step(states, batch, key):
    del key
    new_states = jax.tree_util.tree_map(lambda x: x + batch["delta"], states)
    return new_states, {"toy/loss": batch["loss"]}

  guarded = jax.jit(train_steps.skip_if_nonfinite(toy_step, "toy"))
  states = {"params": jnp.ones(3), "step": jnp.zeros((), jnp.int32)}
  cases = [(0.5, 1.0, 0.0), (0.5, np.nan, 1.0), (np.inf, 1.0, 1.0)]
  for delta, loss, skipped in cases:
    new_states, metrics = guarded(states, {"delta": jnp.float32(delta),
                                           "loss": jnp.float32(loss)}, None)
    assert float(metrics["toy/skipped"]) == skipped
    expected = states["params"] if skipped else states["params"] + delta
    np.testing.assert_array_equal(new_states["params"], expected)
  summary = train.summarize(train.stack_to_host(
      [{"toy/loss": jnp.float32(1.0), "toy/skipped": jnp.float32(0)},
       {"toy/loss": jnp.float32(np.nan), "toy/skipped": jnp.float32(1)}]))
  assert summary == {"toy/loss": 1.0, "toy/skipped": 1.0}


def test_skip_mode_is_bound_into_the_steps():
  assert lpaae_jax.make_train_steps(tiny_config(on_nonfinite="skip")) != (
      lpaae_jax.make_train_steps(tiny_config()))
  with pytest.raises(ValueError, match="config.on_nonfinite='ignore'.*stop, skip"):
    lpaae_jax.make_train_steps(tiny_config(on_nonfinite="ignore"))


def _command(workdir, data_dir, steps):
  """The training command line; its flag overrides also exercise main.py's config flags."""
  # The session's compilation cache (tests/conftest.py) spares each restart a recompile.
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  args = [sys.executable, "-m", "lpaae_jax.main",
          f"--config={ROOT / 'configs' / 'test.py'}:none,learned",
          f"--workdir={workdir}", f"--config.data_dir={data_dir}", "--config.download=False",
          "--config.train_split=test", f"--config.num_train_steps={steps}",
          "--config.checkpoint_every_steps=1", "--config.log_every_steps=1",
          "--config.eval_every_steps=1000"]
  return args, env


def _wait_for_step(workdir: pathlib.Path, step: int, process, timeout=240.0):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if (workdir / "checkpoints").is_dir() and saved_steps(workdir) and (
        saved_steps(workdir)[-1] >= step):
      return
    if process.poll() is not None:
      raise AssertionError(f"training exited early with code {process.returncode}")
    time.sleep(0.05)
  raise AssertionError(f"no checkpoint of step {step} within {timeout} s")


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted_run(real_data_dir,
                                                                         tmp_path):
  """SIGKILL during steps and checkpoint saves (one save per step), restart the same
  command each time: the final parameters equal an uninterrupted run's, bit for bit."""
  steps = 10
  config = tiny_config(**{"data_dir": str(real_data_dir), "download": False,
                          "train_split": "test", "num_train_steps": steps,
                          "checkpoint_every_steps": 1, "log_every_steps": 1,
                          "eval_every_steps": 1000})
  reference = to_host(train.train_and_evaluate(config, str(tmp_path / "reference")))
  workdir = tmp_path / "killed"
  args, env = _command(workdir, real_data_dir, steps)
  rng = random.Random(0)
  for kill_after in (3, 7):  # two restarts, each resuming a killed one
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _wait_for_step(workdir, kill_after, process)
    time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside a step or an asynchronous save
    process.send_signal(signal.SIGKILL)
    process.wait()
  subprocess.run(args, env=env, check=True, capture_output=True, timeout=600)
  killed_states, killed_step = checkpointing.restore_latest(config, str(workdir))
  assert killed_step == steps
  assert leaves_equal(to_host(killed_states), reference)


def test_sigterm_saves_the_current_step_and_exits_cleanly(real_data_dir, tmp_path):
  args, env = _command(tmp_path / "run", real_data_dir, 10_000)
  process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  _wait_for_step(tmp_path / "run", 3, process)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 0, stderr[-2000:]
  last = saved_steps(tmp_path / "run")[-1]
  assert 3 <= last < 10_000
  assert "SIGTERM" in stderr


def test_nan_stops_training_and_the_last_good_checkpoint_stays_latest(tmp_path, monkeypatch):
  real_iterator = train.input_pipeline.create_train_iterator

  def poisoned_iterator(config, start_step=0, **kwargs):
    for step, batch in enumerate(real_iterator(config, start_step, **kwargs), start_step):
      if step == 2:  # the third iteration sees a NaN pixel
        batch = dict(batch, image=batch["image"].copy())
        batch["image"][0, 0, 0, 0] = np.nan
      yield batch

  monkeypatch.setattr(train.input_pipeline, "create_train_iterator", poisoned_iterator)
  config = run_config(tmp_path / "data")
  with pytest.raises(train.NonFiniteLossError, match=r"in the aae phase at step 2"):
    train_mocked(config, tmp_path / "run")
  assert saved_steps(tmp_path / "run") == [2]
