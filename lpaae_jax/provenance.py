"""What made a run and its evaluations: the stored config, code version, packages, devices.

  * `WORKDIR/config.json` holds the resolved training config (file, variant and overrides
    applied), written when training starts. It is plain JSON under "config" (readable, and
    loadable by any JSON reader), with what JSON cannot say recorded beside it: which lists
    are tuples and which None fields are typed placeholders, so `load_config` gives back
    exactly the ConfigDict that trained (`python -m lpaae_jax.evaluate --workdir=...` uses
    it when `--config` is omitted).
  * A resumed run compares its config with the stored one: a different dataset or model is
    a `checkpointing.CheckpointMismatchError`; other differences (more steps, another
    learning rate, ...) are logged and the previous config is kept as
    `config.until_step_N.json` before the new one is written.
  * `record(config)` is what every evaluation's metrics.json carries under "provenance":
    the config, the git commit of the package's checkout (absent when it is not one),
    package versions and devices.
"""

import functools
import importlib.metadata
import json
import os
import platform
import subprocess
from typing import Any, Optional

from absl import logging
import jax
import ml_collections

from lpaae_jax import checkpointing
from lpaae_jax.cpu import malloc
from lpaae_jax import errors
from lpaae_jax import file_utils

CONFIG_FILE = "config.json"
_FORMAT = "lpaae_jax config 1"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets",
            "tensorflow", "tensorflow-cpu", "numpy", "ml-collections", "clu", "lpaae-jax")
_PLACEHOLDER_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


class StoredConfigError(errors.LpaaeError, FileNotFoundError):
  """The workdir has no stored config (or an unreadable one) and none was given."""


def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILE)


# --- Serialisation ---------------------------------------------------------------------------


def _encode(value, path: list, tuples: list, placeholders: dict):
  if isinstance(value, ml_collections.ConfigDict):
    tree = {}
    for key in value.keys():
      field = value._fields[key]  # pylint: disable=protected-access  (placeholder types)
      if (isinstance(field, ml_collections.FieldReference) and field.get() is None
          and field.get_type() in _PLACEHOLDER_TYPES.values()):
        placeholders[".".join(path + [key])] = field.get_type().__name__
      tree[key] = _encode(value[key], path + [key], tuples, placeholders)
    return tree
  if isinstance(value, dict):
    return {str(key): _encode(item, path + [str(key)], tuples, placeholders)
            for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    if isinstance(value, tuple):
      tuples.append(list(path))
    return [_encode(item, path + [index], tuples, placeholders)
            for index, item in enumerate(value)]
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  logging.warning("Config field %s = %r is stored as its text (not a JSON value).",
                  ".".join(map(str, path)), value)
  return str(value)


def config_to_json(config: ml_collections.ConfigDict) -> str:
  """config.json's text: {"config": <the config as JSON>, "tuples": [...], ...}."""
  tuples, placeholders = [], {}
  tree = _encode(config, [], tuples, placeholders)
  document = {"format": _FORMAT, "config": tree, "tuples": tuples,
              "placeholders": placeholders}
  return json.dumps(document, indent=2) + "\n"


def _make_tuples(tree, path: list):
  """`tree` with the list at `path` (deepest paths first) made a tuple."""
  if not path:
    return tuple(tree)
  head, *rest = path
  tree[head] = _make_tuples(tree[head], rest)
  return tree


# Config fields added after runs began storing their config, each with the value that
# reproduces what runs stored before it did: such a run's config.json loads and evaluates.
ADDED_FIELDS = {"loss.info_augmentation": "none", "model.upsampling": "transposed",
                "model.decoder_norm": "none",
                "eval.decoder_batch_norm": "pooled", "num_summary_images": 1000}


def config_from_json(text: str) -> ml_collections.ConfigDict:
  """The ConfigDict `config_to_json` wrote (tuples and typed placeholders restored)."""
  document = json.loads(text)
  if not isinstance(document, dict) or document.get("format") != _FORMAT:
    raise ValueError(f"not a config written by lpaae_jax (format {_FORMAT!r})")
  tree = document["config"]
  for path in sorted(document.get("tuples", []), key=len, reverse=True):
    tree = _make_tuples(tree, list(path))
  config = ml_collections.ConfigDict(tree)
  for dotted, type_name in document.get("placeholders", {}).items():
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
      node = node[part]
    with node.ignore_type():
      setattr(node, leaf, ml_collections.config_dict.placeholder(_PLACEHOLDER_TYPES[type_name]))
  for dotted, value in ADDED_FIELDS.items():
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
      node = node[part]
    if leaf not in node:
      node[leaf] = value
  return config


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config stored in `workdir` by training; StoredConfigError when there is none."""
  file_utils.check_local_workdir(workdir)
  path = config_path(workdir)
  try:
    with open(path, encoding="utf-8") as config_file:
      text = config_file.read()
  except FileNotFoundError:
    raise StoredConfigError(
        f"No stored config {path}: the run was trained before configs were stored, or "
        "--workdir is wrong: pass the run's training config with --config=...") from None
  try:
    return config_from_json(text)
  except (ValueError, KeyError, TypeError, IndexError) as error:
    raise StoredConfigError(f"{path} is not a readable stored config ({error}): pass the "
                            "run's training config with --config=...") from None


def _differences(old, new, prefix: str = "") -> list[str]:
  if isinstance(old, dict) and isinstance(new, dict):
    names = []
    for key in sorted(set(old) | set(new)):
      names += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
    return names
  return [] if (type(old), old) == (type(new), new) else [prefix[:-1]]


def differing_fields(old: ml_collections.ConfigDict,
                     new: ml_collections.ConfigDict) -> list[str]:
  """Dotted names of the fields whose values (or types) differ."""
  return _differences(old.to_dict(), new.to_dict())


def recorded_differences(recorded: dict, config: ml_collections.ConfigDict) -> list[str]:
  """Dotted names of the fields where a metrics record's provenance config (`record`'s
  "config") differs from `config`."""
  return _differences(recorded, json.loads(config_to_json(config))["config"])


def check_stored_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Raises CheckpointMismatchError when the stored config's dataset or model differs from
  `config`'s (the same checks as a checkpoint's metadata); no stored config passes."""
  path = config_path(workdir)
  if not os.path.isfile(path):
    return
  stored = load_config(workdir)
  try:
    meta = checkpointing.run_metadata(stored, 0)
  except Exception:  # pylint: disable=broad-except  (a config of older code: dataset only)
    meta = {"dataset": stored.get("dataset")}
  checkpointing.check_compatible(meta, config, path, holding="records")


def write_config(workdir: str, config: ml_collections.ConfigDict, step: int = 0) -> str:
  """Writes WORKDIR/config.json; a stored config that differs is first kept as
  config.until_step_<step>.json, naming the changed fields in the log."""
  path = config_path(workdir)
  text = config_to_json(config)
  if os.path.isfile(path):
    with open(path, encoding="utf-8") as config_file:
      old_text = config_file.read()
    if old_text == text:
      return path
    try:
      changed = differing_fields(config_from_json(old_text), config)
    except (ValueError, KeyError, TypeError, IndexError):
      changed = ["(unreadable)"]
    kept = os.path.join(workdir, f"config.until_step_{step}.json")
    os.replace(path, kept)
    logging.warning("The config differs from the stored one in %s; the previous config is "
                    "kept as %s.", ", ".join(changed) or "formatting", kept)
  file_utils.write_atomically(path, lambda f: f.write(text.encode("utf-8")))
  logging.info("Wrote the resolved config to %s.", path)
  return path


# --- What made an evaluation -----------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def git_commit() -> Optional[dict[str, Any]]:
  """{"commit", "dirty"} of the git checkout the package was imported from; None when it
  is not a checkout's (e.g. installed from a wheel) or git is unavailable."""
  package_dir = os.path.dirname(os.path.abspath(__file__))
  root = os.path.dirname(package_dir)

  def git(*args: str) -> str:
    return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                          check=True, timeout=20).stdout.strip()
  try:
    toplevel = git("rev-parse", "--show-toplevel")
    # A package installed into a venv inside some repository is not that repository's.
    if os.path.realpath(toplevel) != os.path.realpath(root):
      return None
    return {"commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
  except (OSError, subprocess.SubprocessError):
    return None


def package_versions() -> dict[str, str]:
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return versions


def devices() -> dict[str, Any]:
  kinds: dict[str, int] = {}
  for device in jax.devices():
    kinds[device.device_kind] = kinds.get(device.device_kind, 0) + 1
  return {"backend": jax.default_backend(), "device_count": jax.device_count(),
          "process_count": jax.process_count(), "device_kinds": kinds}


def record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The provenance an evaluation's metrics.json carries."""
  result = {"config": json.loads(config_to_json(config))["config"],
            "package_versions": package_versions(), "devices": devices(),
            "python": platform.python_version(), "malloc": malloc.malloc_library()}
  commit = git_commit()
  if commit is not None:
    result["git_commit"], result["git_dirty"] = commit["commit"], commit["dirty"]
  return result
