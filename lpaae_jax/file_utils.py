"""Atomic file writes: a temp file in the target's directory, then a rename, so a reader
(or a run killed mid-write) never sees half a file. And the check that a workdir is local."""

import json
import os
import re
import tempfile
from typing import Any, BinaryIO, Callable

import numpy as np

from lpaae_jax import errors


class UnsupportedPathError(errors.LpaaeError, ValueError):
  """A workdir on a cloud filesystem (gs://, s3://, ...), which our file layer cannot write."""


def check_local_workdir(workdir: str, flag: str = "--workdir") -> None:
  """Stops a cloud URI before anything runs: our writes (config.json, metrics, figures,
  checkpoint paths) use the local filesystem and would put the run in a local directory
  named like the URI ("gs:/bucket/run") instead of the bucket."""
  match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", os.fspath(workdir))
  if match:
    raise UnsupportedPathError(
        f"{flag}={workdir}: {match.group(1)}:// paths are not supported yet (the run would "
        "go to a local directory of that name); mount the bucket (e.g. gcsfuse) and pass "
        "the mounted local path.")


def write_atomically(path: str, write: Callable[[BinaryIO], None]) -> str:
  """Calls `write(file)` on a temp file beside `path`, then renames it to `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, temp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".partial")
  try:
    with os.fdopen(fd, "wb") as temp_file:
      write(temp_file)
    os.replace(temp_path, path)
  except BaseException:
    if os.path.exists(temp_path):
      os.remove(temp_path)
    raise
  return path


def json_ready(value: Any) -> Any:
  """`value` with numpy scalars as Python numbers and NaN/inf as None (strict JSON)."""
  if isinstance(value, dict):
    return {key: json_ready(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_ready(item) for item in value]
  if isinstance(value, (np.floating, float)):
    return float(value) if np.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value


def write_json(path: str, value: Any) -> str:
  """Writes `value` (see `json_ready`) as indented, key-sorted JSON, atomically."""
  text = json.dumps(json_ready(value), indent=2, sort_keys=True) + "\n"
  return write_atomically(path, lambda f: f.write(text.encode("utf-8")))
