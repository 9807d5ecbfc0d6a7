"""Atomic file writes: a temp file in the target's directory, then a rename, so a reader
(or a run killed mid-write) never sees half a file."""

import os
import tempfile
from typing import BinaryIO, Callable


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
