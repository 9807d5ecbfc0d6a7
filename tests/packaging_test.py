"""pyproject.toml: installable package, its commands and dependencies; configs that load by
file path from any working directory, and ship in the wheel. Cheap but for the wheel test
(a build and README's API example on the tiny test config, in a subprocess)."""

import ast
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile

from absl import flags
from ml_collections.config_flags import config_flags
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
import pytest
import setuptools

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = {"lpaae-train": "lpaae_jax.main:run", "lpaae-evaluate": "lpaae_jax.evaluate:run",
            "lpaae-benchmark": "lpaae_jax.benchmark:run"}


@pytest.fixture(scope="module")
def project():
  with open(ROOT / "pyproject.toml", "rb") as f:
    return tomllib.load(f)["project"]


def _pins() -> dict[str, Version]:
  pins = {}
  for line in (ROOT / "requirements.txt").read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
      requirement = Requirement(line)
      (specifier,) = requirement.specifier  # the pinned set: one `==` each
      assert specifier.operator == "==", line
      pins[canonicalize_name(requirement.name)] = Version(specifier.version)
  return pins


def test_requires_python_admits_this_interpreter(project):
  requirement = Requirement(f"python{project['requires-python']}")
  assert requirement.specifier.contains(".".join(map(str, sys.version_info[:3])))


def test_every_pinned_requirement_is_declared_with_a_range_holding_its_pin(project):
  declared = {}
  for line in project["dependencies"] + project["optional-dependencies"]["dev"]:
    requirement = Requirement(line)
    declared.setdefault(canonicalize_name(requirement.name), []).append(requirement)
  for name, pin in _pins().items():
    assert name in declared, f"{name} is pinned in requirements.txt but not in pyproject.toml"
    for requirement in declared[name]:
      specifiers = [s.operator for s in requirement.specifier]
      assert "<" in specifiers and ">=" in specifiers, f"{requirement}: not a range"
      assert requirement.specifier.contains(pin), f"{requirement} excludes the pinned {pin}"


@pytest.mark.parametrize("platform, machine", [("linux", "x86_64"), ("linux", "aarch64"),
                                               ("darwin", "arm64"), ("win32", "AMD64")])
def test_every_platform_gets_exactly_one_tensorflow_that_exists(project, platform, machine):
  # tensorflow-cpu has wheels for x86-64 Linux and Windows only.
  environment = {"sys_platform": platform, "platform_machine": machine}
  lines = [line.split("#", 1)[0].strip()
           for line in (ROOT / "requirements.txt").read_text().splitlines()]
  for requirements in ([line for line in lines if line], project["dependencies"]):
    chosen = [r.name for r in map(Requirement, requirements)
              if r.name.startswith("tensorflow") and r.name != "tensorflow-datasets"
              and (r.marker is None or r.marker.evaluate(environment))]
    expected = "tensorflow-cpu" if (platform, machine) in (("linux", "x86_64"),
                                                           ("win32", "AMD64")) else "tensorflow"
    assert chosen == [expected], (platform, machine, chosen)


def test_accelerator_extras_match_the_pinned_jax(project):
  pin = _pins()["jax"]
  for extra in ("cuda12", "cuda13", "tpu"):
    (requirement,) = map(Requirement, project["optional-dependencies"][extra])
    assert requirement.name == "jax" and requirement.extras == {extra}
    assert requirement.specifier.contains(pin)


def test_console_scripts_name_a_run_function_without_arguments(project):
  assert project["scripts"] == COMMANDS
  for target in COMMANDS.values():
    module, function = target.split(":")
    # Parsed, not imported: importing the commands costs seconds of TensorFlow.
    tree = ast.parse(pathlib.Path(importlib.util.find_spec(module).origin).read_text())
    (definition,) = [node for node in tree.body
                     if isinstance(node, ast.FunctionDef) and node.name == function]
    assert not definition.args.args, f"{target} must run without arguments"


def test_every_source_directory_is_a_package_the_build_includes():
  # A directory of modules without __init__.py would be left out of the wheel silently.
  found = set(setuptools.find_packages(str(ROOT), include=["lpaae_jax", "lpaae_jax.*"]))
  for directory, _, files in os.walk(ROOT / "lpaae_jax"):
    if "__pycache__" not in directory and any(f.endswith(".py") for f in files):
      package = ".".join(pathlib.Path(directory).relative_to(ROOT).parts)
      assert package in found, f"{directory} has modules but no __init__.py"


@pytest.mark.parametrize("name", sorted(path.stem for path in (ROOT / "configs").glob("*.py")
                                         if path.stem != "__init__"))
@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # ml_collections'
def test_configs_load_by_path_from_another_working_directory(name, tmp_path, monkeypatch):
  # As `--config=/abs/path/configs/mnist.py` from elsewhere: the checkout is not on sys.path
  # and its `configs` package is not importable.
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "path", [p for p in sys.path
                                    if p not in ("", ".") and pathlib.Path(p).resolve() != ROOT])
  for module in [m for m in sys.modules if m == "configs" or m.startswith("configs.")]:
    monkeypatch.delitem(sys.modules, module)
  with pytest.raises(ImportError):
    importlib.import_module("configs")
  flag_values = flags.FlagValues()  # the commands' --config flag, on its own
  config_flags.DEFINE_config_file("config", flag_values=flag_values)
  flag_values(["lpaae-train", f"--config={ROOT / 'configs' / name}.py:supervised"])
  config = flag_values.config
  assert config.model.condition == "supervised" and config.model.image_size == 32


def _readme_api_example() -> str:
  readme = (ROOT / "README.md").read_text()
  section = readme[readme.index("## Library API"):]
  start = section.index("```python\n") + len("```python\n")
  return section[start:section.index("\n```", start)]


def test_a_built_wheel_ships_the_configs_and_runs_the_readme_api_example(tmp_path):
  # As an installed user: the wheel's files alone, from a directory with no checkout in it.
  source = tmp_path / "source"  # a copy: setuptools writes build/ beside the sources
  shutil.copytree(ROOT / "lpaae_jax", source / "lpaae_jax",
                  ignore=shutil.ignore_patterns("__pycache__"))
  for name in ("pyproject.toml", "README.md", "LICENSE"):
    shutil.copyfile(ROOT / name, source / name)
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-q", "-w", str(tmp_path / "dist"), str(source)], check=True, cwd=tmp_path,
                 capture_output=True, timeout=300)
  (wheel,) = (tmp_path / "dist").glob("lpaae_jax-*.whl")
  site = tmp_path / "site"
  with zipfile.ZipFile(wheel) as archive:
    archive.extractall(site)
  script = _readme_api_example() + textwrap.dedent(f"""
      import importlib.metadata
      assert lpaae_jax.__file__.startswith({str(site)!r}), lpaae_jax.__file__
      assert importlib.metadata.version("lpaae_jax") == lpaae_jax.__version__
      assert importlib.metadata.metadata("lpaae_jax")["License"] == "Apache-2.0"
      assert configs.path("cifar10").startswith({str(site)!r})
      assert configs.get_config("cifar10", "supervised,fixed").model.prior == "fixed"
      assert images.shape == (10, size, size, channels), images.shape
      assert reconstructions.shape == batch["image"].shape
      print("ok")
      """)
  work = tmp_path / "elsewhere"
  work.mkdir()
  env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
