"""cpu/malloc.py: glibc keeps the memory a step frees for the next step."""

import pathlib
import subprocess
import sys

import pytest

from lpaae_jax.cpu import malloc

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Twice: allocate 20 blocks of 16 MiB (a width-64 step's temporaries come in heaps of that
# size), touch every page, free them; print the page faults of the second time.
_STEP_LIKE_CYCLES = """
import ctypes, resource, sys
from lpaae_jax.cpu import malloc
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "keep":
  assert malloc.keep_freed_memory() and malloc.kept()
def cycle():
  blocks = [libc.malloc(16 << 20) for _ in range(20)]
  for block in blocks:
    ctypes.memset(block, 1, 16 << 20)
  for block in blocks:
    libc.free(block)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_cycle_faults(mode: str) -> int:
  result = subprocess.run([sys.executable, "-c", _STEP_LIKE_CYCLES, mode], cwd=ROOT,
                          capture_output=True, text=True, check=True)
  return int(result.stdout.split()[-1])


@pytest.mark.skipif(malloc._glibc() is None, reason="needs glibc's malloc")  # pylint: disable=protected-access
def test_keep_freed_memory_makes_the_next_step_reuse_the_freed_pages():
  pages = 20 * (16 << 20) // 4096
  assert _second_cycle_faults("as_it_comes") > pages // 2  # glibc gave the memory back
  assert _second_cycle_faults("keep") < pages // 20


def test_keep_freed_memory_is_idempotent_and_recorded(monkeypatch):
  monkeypatch.setattr(malloc, "_kept", True)
  assert malloc.keep_freed_memory() and malloc.kept()


def test_keep_freed_memory_leaves_a_preloaded_malloc_alone(monkeypatch):
  monkeypatch.setattr(malloc, "_kept", False)
  monkeypatch.setattr(malloc, "malloc_library", lambda **unused: "tcmalloc")
  assert not malloc.keep_freed_memory() and not malloc.kept()


def test_malloc_library_names_a_preloaded_allocator(tmp_path):
  maps = tmp_path / "maps"
  maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
  assert malloc.malloc_library(str(maps), {}, kept_memory=False) == "system"
  maps.write_text(maps.read_text()
                  + "7f02-7f03 r-xp 0 08:01 2 /usr/lib/libtcmalloc_minimal.so.4.5.10\n")
  assert malloc.malloc_library(str(maps), {}, kept_memory=True) == "tcmalloc"
  assert malloc.malloc_library(str(tmp_path / "no_such_maps"), {}, kept_memory=False) == "system"


def test_malloc_library_says_when_glibc_keeps_freed_memory(tmp_path):
  maps = tmp_path / "maps"
  maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
  assert malloc.malloc_library(str(maps), {}, kept_memory=True) == "system, freed memory kept"
  assert malloc.malloc_library(
      str(maps), {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, kept_memory=True) == (
          "system, glibc.malloc.hugetlb=1, freed memory kept")


def test_malloc_library_names_glibcs_huge_page_tunable(tmp_path):
  maps = tmp_path / "maps"
  maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
  tunables = lambda value: {"GLIBC_TUNABLES": value}
  name = lambda environ: malloc.malloc_library(str(maps), environ, kept_memory=False)
  assert name(tunables("glibc.malloc.hugetlb=1")) == "system, glibc.malloc.hugetlb=1"
  assert name(tunables("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2")) == (
      "system, glibc.malloc.hugetlb=2")
  assert name(tunables("glibc.malloc.hugetlb=0")) == "system"
  assert name({}) == "system"
