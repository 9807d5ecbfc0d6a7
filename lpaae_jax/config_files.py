"""Config files that load by path from any working directory.

ml_collections loads `--config=path/to/mnist.py` as a module outside any package, so a
config that imported its neighbour as `from configs import default` would load only where
`configs` is importable, i.e. with the checkout's root as the working directory.
`load_sibling` loads the neighbour by its path instead.
"""

import importlib.util
import os
import types

_loaded: dict[str, types.ModuleType] = {}


def load_sibling(config_file: str, name: str) -> types.ModuleType:
  """The module `name`.py beside `config_file` (pass `__file__`), loaded once per path."""
  path = os.path.join(os.path.dirname(os.path.realpath(config_file)), f"{name}.py")
  if path not in _loaded:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{config_file} needs {path}, which does not exist: keep the "
                              "config files of configs/ together in one directory.")
    spec = importlib.util.spec_from_file_location(f"lpaae_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _loaded[path] = module
  return _loaded[path]
