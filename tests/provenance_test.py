"""The stored config (exact round trip, resume checks), dataset mismatches and what an
evaluation records of the code, packages and devices. In process, nothing compiles."""

import importlib
import json
import os
import pathlib
import subprocess

import pytest

from lpaae_jax import checkpointing
from lpaae_jax import config_validation
from lpaae_jax import provenance
from lpaae_jax.cpu import malloc
from tests.helpers import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["default", "mnist", "cifar10", "svhn", "test"])
@pytest.mark.parametrize("variant", [None, "supervised,fixed", "unsupervised,learned"])
def test_stored_config_round_trips_every_config_exactly(module, variant):
  config = importlib.import_module(f"configs.{module}").get_config(variant)
  loaded = provenance.config_from_json(provenance.config_to_json(config))
  assert loaded == config  # values, tuples (not lists) and typed placeholders
  assert provenance.differing_fields(loaded, config) == []
  assert isinstance(loaded.model.code_disc_hidden, tuple)
  assert isinstance(loaded.loss.feature_layers, tuple)
  with pytest.raises(TypeError):  # still a str placeholder, as in the config file
    loaded.eval.judge_path = 3
  # Readable as plain JSON by anyone: the config's fields under "config".
  assert json.loads(provenance.config_to_json(config))["config"]["dataset"] == config.dataset


def test_stored_config_keeps_overrides_and_is_written_at_most_once(tmp_path):
  config = tiny_config("supervised", **{"data_dir": "/data", "model.code_disc_hidden": (8, 4)})
  provenance.write_config(str(tmp_path), config)
  loaded = provenance.load_config(str(tmp_path))
  assert loaded == config and loaded.model.code_disc_hidden == (8, 4)
  provenance.write_config(str(tmp_path), config, step=10)  # resumed, same config: no copy
  assert sorted(p.name for p in tmp_path.iterdir()) == [provenance.CONFIG_FILE]


def test_a_config_stored_before_a_field_existed_loads_with_the_old_behaviour():
  config = tiny_config("unsupervised",
                       num_summary_images=provenance.ADDED_FIELDS["num_summary_images"])
  document = json.loads(provenance.config_to_json(config))
  for dotted in provenance.ADDED_FIELDS:
    *parents, leaf = dotted.split(".")
    node = document["config"]
    for part in parents:
      node = node[part]
    del node[leaf]  # as written by the code before the field was added
  loaded = provenance.config_from_json(json.dumps(document))
  assert loaded == config and loaded.model.upsampling == "transposed"


def test_a_resumed_run_checks_the_stored_config(tmp_path):
  workdir = str(tmp_path)
  provenance.check_stored_config(workdir, tiny_config())  # nothing stored: nothing to check
  provenance.write_config(workdir, tiny_config())
  provenance.check_stored_config(workdir, tiny_config(num_train_steps=40))
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match=r"config.json records a run with dataset='mnist', but this config "
                           r"has dataset='cifar10': .*--config"):
    provenance.check_stored_config(workdir, tiny_config(dataset="cifar10"))
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match=r"config.json records a model with model.width=4, but this config "
                           r"has model.width=8"):
    provenance.check_stored_config(workdir, tiny_config(**{"model.width": 8}))

  # Another number of steps (say) is allowed: the old config is kept, not overwritten.
  longer = tiny_config(num_train_steps=40)
  provenance.write_config(workdir, longer, step=20)
  assert provenance.load_config(workdir) == longer
  kept = tmp_path / "config.until_step_20.json"
  assert provenance.config_from_json(kept.read_text()) == tiny_config()


def test_a_checkpoint_of_another_dataset_is_a_mismatch(tmp_path):
  trained, evaluating = tiny_config(), tiny_config(dataset="svhn_cropped")
  evaluating.fast_paths = "xla" if trained.fast_paths != "xla" else "cpu"
  meta = checkpointing.run_metadata(trained, 5)
  assert "backend" not in meta["model_spec"]
  with pytest.raises(checkpointing.CheckpointMismatchError) as excinfo:
    checkpointing.check_compatible(meta, evaluating, str(tmp_path))
  message = str(excinfo.value)
  assert "\n" not in message
  for fragment in (str(tmp_path), "dataset='mnist'", "dataset='svhn_cropped'", "--config",
                   "--workdir"):
    assert fragment in message, message
  checkpointing.check_compatible(meta, tiny_config(), str(tmp_path))  # same run: fine


def test_missing_stored_config_names_the_file_and_the_fix(tmp_path):
  with pytest.raises(provenance.StoredConfigError,
                     match=f"No stored config {tmp_path / 'config.json'}.*--config="):
    provenance.load_config(str(tmp_path))
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(provenance.StoredConfigError, match="not a readable stored config"):
    provenance.load_config(str(tmp_path))


def test_the_record_names_the_config_commit_packages_and_devices():
  config = tiny_config("unsupervised")
  record = provenance.record(config)
  assert record["config"]["model"]["condition"] == "unsupervised"
  assert record["config"]["model"]["code_disc_hidden"] == list(config.model.code_disc_hidden)
  for package in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets"):
    assert record["package_versions"][package], package
  assert record["devices"]["device_count"] >= 1 and record["devices"]["backend"]
  assert record["malloc"] == malloc.malloc_library()
  if (ROOT / ".git").exists():  # a checkout: its HEAD
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert record["git_commit"] == head and isinstance(record["git_dirty"], bool)
  json.dumps(record)  # all JSON


def test_no_git_commit_outside_a_checkout(monkeypatch, tmp_path):
  # A package installed from a wheel (here: a copy of this module outside any checkout).
  package = tmp_path / "site-packages" / "lpaae_jax"
  package.mkdir(parents=True)
  monkeypatch.setattr(provenance, "__file__", str(package / "provenance.py"))
  provenance.git_commit.cache_clear()
  try:
    assert provenance.git_commit() is None
    assert "git_commit" not in provenance.record(tiny_config())
  finally:
    provenance.git_commit.cache_clear()
  assert os.path.isdir(package)


def test_the_benchmark_takes_a_workdirs_stored_config(tmp_path):
  from lpaae_jax import benchmark  # pylint: disable=g-import-not-at-top
  from lpaae_jax import config_validation  # pylint: disable=g-import-not-at-top
  config = tiny_config("supervised", batch_size=8)
  provenance.write_config(str(tmp_path), config)
  assert benchmark.resolve_config(None, str(tmp_path)) == config
  given = tiny_config()
  assert benchmark.resolve_config(given, str(tmp_path)) is given  # --config wins
  with pytest.raises(config_validation.ConfigError, match="--config=.*--workdir="):
    benchmark.resolve_config(None, None)


def test_a_retired_field_loads_at_its_neutral_value_and_names_its_commit_otherwise(
    monkeypatch):
  config = tiny_config()
  with config.unlocked():
    config.shuffle_buffer_size = 10_000  # stored by runs before it was retired; never read
  config_validation.validate_config(config)
  monkeypatch.setitem(config_validation.RETIRED_FIELDS, "loss.widget_weight",
                      config_validation.RetiredField(0.0, "abc1234"))
  with config.unlocked():
    config.loss.widget_weight = 0.0
  config_validation.validate_config(config)
  config.loss.widget_weight = 0.5
  with pytest.raises(config_validation.ConfigError,
                     match=r"^config.loss.widget_weight=0.5 sets a retired field: this code "
                           r"trains as with 0.0\. .*check out commit abc1234"):
    config_validation.validate_config(config)
