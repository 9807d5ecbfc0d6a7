"""pytorch-fid's Inception .pth -> the .npz that lpaae_jax reads; torch is not needed.

  python -m lpaae_jax.evaluation.convert_inception \
      --pth=pt_inception-2015-12-05-6726825d.pth \
      --out=$HOME/.cache/lpaae_jax/pt_inception-2015-12-05.npz

Reads both torch.save formats: the zip archive (torch >= 1.6: <prefix>/data.pkl
plus each storage's raw bytes in <prefix>/data/<key>) and the older stream
(magic number and header pickles, the state-dict pickle, then the storages).
Only the globals a state dict needs are unpickled, so a .pth can't run code.
The .npz holds every key of the state dict (fc included), torch layout.
"""

import argparse
import collections
import hashlib
import os
import pickle
import sys
import zipfile
from collections.abc import Mapping

import numpy as np

from lpaae_jax import file_utils

_LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL_VERSION = 1001
_BFLOAT16 = "bfloat16"  # numpy has none: read as uint16, widened to float32.

# torch storage class / dtype name -> element type (a numpy dtype or _BFLOAT16).
_STORAGE_ELEMENT_TYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": _BFLOAT16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}
_TORCH_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "bfloat16": _BFLOAT16, "int64": np.int64,
    "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16,
    "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
    "uint64": np.uint64, "bool": np.bool_,
}


def _itemsize(element_type) -> int:
  return 2 if element_type is _BFLOAT16 else np.dtype(element_type).itemsize


class _ElementType:
  """What unpickling torch.FloatStorage, torch.float32, ... yields."""

  def __init__(self, element_type):
    self.element_type = element_type


class _Storage:
  """A storage's raw bytes, filled in when read (after the pickle, in the legacy format)."""

  def __init__(self, element_type):
    self.element_type = element_type
    self.data: np.ndarray | None = None  # uint8


class _PendingTensor:
  """A tensor view (offset, size, stride in elements) of a storage not yet read."""

  def __init__(self, storage, offset, size, stride, element_type):
    self.storage, self.offset = storage, int(offset)
    self.size, self.stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    self.element_type = element_type

  def to_numpy(self, byteorder: str) -> np.ndarray:
    is_bfloat16 = self.element_type is _BFLOAT16
    dtype = np.dtype(np.uint16 if is_bfloat16 else self.element_type)
    dtype = dtype.newbyteorder("<" if byteorder == "little" else ">")
    raw = self.storage.data
    elements = raw[:len(raw) // dtype.itemsize * dtype.itemsize].view(dtype)
    if 0 in self.size:
      array = np.zeros(self.size, dtype)
    else:
      last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
      if self.offset < 0 or min(self.stride, default=0) < 0 or last >= len(elements):
        raise ValueError(f"tensor view (offset {self.offset}, size {self.size}, stride "
                         f"{self.stride}) exceeds its storage of {len(elements)} elements")
      array = np.lib.stride_tricks.as_strided(
          elements[self.offset:], shape=self.size,
          strides=[s * dtype.itemsize for s in self.stride], writeable=False)
    array = array.astype(dtype.newbyteorder("="))  # A native-order, contiguous copy.
    if is_bfloat16:
      array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_tensor(storage, storage_offset, size, stride):
  return _PendingTensor(storage, storage_offset, size, stride, storage.element_type)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
  del requires_grad, backward_hooks, metadata
  return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
  # Untyped (byte) storage; the tensor's dtype comes separately.
  del requires_grad, backward_hooks, metadata
  return _PendingTensor(storage, storage_offset, size, stride, dtype.element_type)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
  del requires_grad, backward_hooks, state
  return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
  """Unpickles a torch state dict into _PendingTensors; refuses any other global."""

  def __init__(self, file, storages: dict, legacy: bool):
    super().__init__(file, encoding="utf-8")
    self._storages, self._legacy = storages, legacy

  def find_class(self, module, name):
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    if module in ("torch", "torch.storage") and name in _STORAGE_ELEMENT_TYPES:
      return _ElementType(_STORAGE_ELEMENT_TYPES[name])
    if module == "torch" and name in _TORCH_DTYPES:
      return _ElementType(_TORCH_DTYPES[name])
    raise pickle.UnpicklingError(f"{module}.{name} is not expected in a torch state dict")

  def persistent_load(self, pid):
    # zip: ("storage", type, key, location, numel); legacy adds view_metadata.
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
    storage_type, key = pid[1], str(pid[2])
    if self._legacy and pid[5] is not None:
      raise pickle.UnpicklingError("storage views of pre-1.0 torch files are not supported")
    if key not in self._storages:
      self._storages[key] = _Storage(storage_type.element_type)
    return self._storages[key]


def _materialize(obj, byteorder: str):
  if isinstance(obj, _PendingTensor):
    return obj.to_numpy(byteorder)
  if isinstance(obj, Mapping):
    return {key: _materialize(value, byteorder) for key, value in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(value, byteorder) for value in obj)
  return obj


def _load_zip(path: str):
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path}: expected one data.pkl in the torch zip archive, got {pickles}")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
      byteorder = archive.read(prefix + "byteorder").decode().strip()
    storages = {}
    with archive.open(pickles[0]) as pickle_file:
      obj = _StateDictUnpickler(pickle_file, storages, legacy=False).load()
    for key, storage in storages.items():
      storage.data = np.frombuffer(archive.read(f"{prefix}data/{key}"), np.uint8)
  return obj, byteorder


def _load_legacy(path: str):
  storages = {}
  with open(path, "rb") as stream:
    header = _StateDictUnpickler(stream, storages, legacy=True)
    if header.load() != _LEGACY_MAGIC_NUMBER:
      raise ValueError(f"{path}: neither a torch zip archive nor a legacy torch.save file")
    if header.load() != _LEGACY_PROTOCOL_VERSION:
      raise ValueError(f"{path}: unsupported legacy torch.save protocol version")
    sys_info = header.load()
    byteorder = "little" if sys_info.get("little_endian", True) else "big"
    obj = _StateDictUnpickler(stream, storages, legacy=True).load()
    storage_keys = _StateDictUnpickler(stream, storages, legacy=True).load()
    # Each storage: int64 element count, then the raw elements, in the pickled key order.
    for key in storage_keys:
      storage = storages[str(key)]
      numel = int.from_bytes(stream.read(8), byteorder)
      num_bytes = numel * _itemsize(storage.element_type)
      storage.data = np.frombuffer(stream.read(num_bytes), np.uint8)
      if len(storage.data) != num_bytes:
        raise ValueError(f"{path}: truncated storage {key!r}")
  return obj, byteorder


def _flatten_arrays(obj, path: str, prefix: str = "") -> dict[str, np.ndarray]:
  if not isinstance(obj, Mapping):
    raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
  arrays = {}
  for key, value in obj.items():
    if isinstance(value, Mapping):
      arrays.update(_flatten_arrays(value, path, f"{prefix}{key}."))
    elif isinstance(value, np.ndarray):
      arrays[f"{prefix}{key}"] = value
    else:
      raise ValueError(f"{path}: state dict entry {prefix}{key!r} is a "
                       f"{type(value).__name__}, not a tensor")
  return arrays


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """A torch.save'd state dict (zip or legacy format) -> {key: numpy array}, key order kept."""
  try:
    obj, byteorder = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
  except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, IndexError,
          TypeError) as error:
    raise ValueError(f"{path}: not a readable torch state dict: {error}") from error
  return _flatten_arrays(_materialize(obj, byteorder), path)


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as stream:
    for block in iter(lambda: stream.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pth", required=True, help="torch.save'd state dict, e.g. the "
                      "pytorch-fid release pt_inception-2015-12-05-6726825d.pth")
  parser.add_argument("--out", required=True, help="the .npz to write")
  parser.add_argument("--no-check", dest="check", action="store_false",
                      help="don't require the keys and shapes of the FID InceptionV3")
  args = parser.parse_args(argv)
  pth_path, out_path = os.path.expanduser(args.pth), os.path.expanduser(args.out)

  from lpaae_jax.evaluation import inception  # Deferred: jax is only needed for --check.
  if not os.path.isfile(pth_path):
    print(f"error: {pth_path} not found; the pytorch-fid weights are at "
          f"{inception.RELEASE_PTH_URL}", file=sys.stderr)
    return 1
  sha256 = _sha256(pth_path)
  print(f"{pth_path}: sha256 {sha256}")
  if (args.check and os.path.basename(pth_path) == inception.RELEASE_PTH_NAME
      and not sha256.startswith(inception.RELEASE_PTH_SHA256_PREFIX)):
    # The release name carries its sha256 prefix (torch.hub's check_hash convention).
    print(f"error: {pth_path} has sha256 {sha256}, but the release's starts with "
          f"{inception.RELEASE_PTH_SHA256_PREFIX}: a corrupt or partial download; fetch it "
          f"again from {inception.RELEASE_PTH_URL}", file=sys.stderr)
    return 1
  try:
    arrays = read_torch_state_dict(pth_path)
    if args.check:
      inception.variables_from_state_dict(arrays, source=pth_path)
  except ValueError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  file_utils.write_atomically(out_path, lambda f: np.savez(f, **arrays))
  has_fc = "fc.weight" in arrays
  print(f"wrote {len(arrays)} arrays to {out_path} "
        f"({'with' if has_fc else 'without'} the 1008-way fc for the Inception Score)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
