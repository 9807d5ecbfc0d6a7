"""glibc's malloc told to keep freed memory: part of the CPU fast paths (`config.fast_paths`).

Each call of a train step allocates its temporaries (in heaps of `compiler.TEMP_HEAP_BYTES`)
and frees them when it returns. glibc then hands the free top of its arenas back to the
kernel and deletes arena heaps that became empty, so the next call page-faults the same
memory in again. With the trim and mmap thresholds fixed high and a 1 GiB top pad (an
arena keeps that much free memory at its top, and its heaps are never deleted) most of
those faults go and iterations ran faster (experiments/benchmark/NOTEBOOK.md, "malloc").
The cost: the process keeps its peak heap for its lifetime, which a training process
reaches every step anyway. `train.train_and_evaluate` and the benchmark apply it with the
CPU fast paths on; the train steps themselves do not (it is a setting of the whole process).
"""

import ctypes
import os
from typing import Optional

from absl import logging

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# (parameter, value): never trim (mallopt takes an int), allocations up to glibc's largest
# mmap threshold (32 MiB) come from the arenas, 1 GiB kept at an arena's top.
SETTINGS = ((_M_TRIM_THRESHOLD, 2**31 - 1), (_M_MMAP_THRESHOLD, 32 * 2**20),
            (_M_TOP_PAD, 2**30))

_kept = False


def _glibc():
  """The process's C library if it is glibc with mallopt, else None."""
  try:
    libc = ctypes.CDLL(None)
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement
    return libc if hasattr(libc, "mallopt") else None
  except (OSError, AttributeError):
    return None


def keep_freed_memory() -> bool:
  """Applies SETTINGS to this process's glibc malloc; True if it did (or had). Does nothing
  (False) without glibc or with another malloc preloaded (tcmalloc keeps freed memory
  itself)."""
  global _kept
  if _kept:
    return True
  libc = _glibc()
  if libc is None or malloc_library(kept_memory=False) in ("tcmalloc", "jemalloc"):
    return False
  for parameter, value in SETTINGS:
    if libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) != 1:
      logging.warning("glibc rejected mallopt(%d, %d); freed memory is trimmed as usual.",
                      parameter, value)
      return False
  _kept = True
  logging.info("glibc's malloc keeps freed memory for the next step (CPU fast paths).")
  return True


def kept() -> bool:
  """Whether `keep_freed_memory` applied its settings in this process."""
  return _kept


def malloc_library(maps_path: str = "/proc/self/maps", environ=None,
                   kept_memory: Optional[bool] = None) -> str:
  """The malloc this process runs with: a preloaded "tcmalloc" or "jemalloc", else the C
  library's: "system", plus ", glibc.malloc.hugetlb=N" where GLIBC_TUNABLES asks glibc to
  back its large blocks with transparent huge pages and ", freed memory kept" where
  `keep_freed_memory` applied (`kept_memory`; default: whether it did in this process).
  On a CPU it changes the step time (README, Performance)."""
  try:
    with open(maps_path, encoding="utf-8") as maps:
      text = maps.read()
  except OSError:  # not Linux
    text = ""
  for name in ("tcmalloc", "jemalloc"):
    if f"lib{name}" in text:
      return name
  result = "system"
  tunables = (os.environ if environ is None else environ).get("GLIBC_TUNABLES", "")
  for tunable in tunables.split(":"):
    if tunable.startswith("glibc.malloc.hugetlb=") and tunable != "glibc.malloc.hugetlb=0":
      result += f", {tunable}"
  if kept() if kept_memory is None else kept_memory:
    result += ", freed memory kept"
  return result
