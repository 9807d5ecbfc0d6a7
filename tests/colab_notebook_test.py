"""experiments/colab_tpu.ipynb and its script twin experiments/colab_tpu.py.

The twin is generated from the notebook (`notebook_to_script`): the same cells in order,
each shell line `!cmd` turned into `shell(f"cmd")` and each magic `%line` into
`line_magic(f"line")` (IPython expands `{expr}` in both, as the f-strings do). Rewrite it
after editing the notebook:

  python -m tests.colab_notebook_test

CI runs the twin on CPU with the tiny config for a few steps under mock data.
"""

import json
import os
import pathlib
import re
import runpy
import sys

from packaging.requirements import Requirement
import pytest

import tensorflow_datasets as tfds

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "experiments" / "colab_tpu.ipynb"
TWIN = ROOT / "experiments" / "colab_tpu.py"

TWIN_HEADER = '''"""experiments/colab_tpu.ipynb as a script (generated: edit the notebook, then run
`python -m tests.colab_notebook_test` to rewrite this file).

  python experiments/colab_tpu.py    # from the repository root

Its shell and magic lines are `shell(...)` and `line_magic(...)` calls: the notebook's own
conditions decide which shell commands run (none outside Colab when run from a checkout),
and magics, which only display (TensorBoard), are skipped outside IPython.
"""

import subprocess


def shell(command: str) -> None:
  """The notebook's `!command`."""
  subprocess.run(command, shell=True, check=True)


def line_magic(line: str) -> None:
  """The notebook's `%line`, run by IPython when there is one, else skipped."""
  try:
    from IPython import get_ipython  # pylint: disable=g-import-not-at-top
  except ImportError:
    ipython = None
  else:
    ipython = get_ipython()
  if ipython is None:
    print(f"(not in IPython, skipped: %{line})")
    return
  name, _, arguments = line.partition(" ")
  ipython.run_line_magic(name, arguments)
'''


def script_line(line: str) -> str:
  """A notebook code line as the twin writes it."""
  body = line.lstrip(" ")
  indent = line[:len(line) - len(body)]
  if body.startswith("!"):
    return f"{indent}shell(f{body[1:]!r})"
  if body.startswith("%"):
    return f"{indent}line_magic(f{body[1:]!r})"
  return line


def notebook_to_script(notebook: dict) -> str:
  """The twin's text: the header, then every cell in `# %%` (percent) format."""
  parts = [TWIN_HEADER]
  for cell in notebook["cells"]:
    source = "".join(cell["source"]).rstrip("\n")
    if cell["cell_type"] == "code":
      lines = [script_line(line) for line in source.split("\n")]
      parts.append("# %%\n" + "\n".join(lines) + "\n")
    elif cell["cell_type"] == "markdown":
      lines = [f"# {line}".rstrip() for line in source.split("\n")]
      parts.append("# %% [markdown]\n" + "\n".join(lines) + "\n")
  return "\n\n".join(parts)


def read_notebook() -> dict:
  return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[str]:
  return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def test_twin_holds_the_notebooks_cells():
  twin = TWIN.read_text(encoding="utf-8")
  assert twin == notebook_to_script(read_notebook()), (
      "experiments/colab_tpu.py is out of date: run python -m tests.colab_notebook_test")
  # Independently of the generator: the twin's code cells are the notebook's, except for
  # the shell/magic lines.
  twin_cells = [cell.split("\n", 1)[1].rstrip("\n") for cell in twin.split("\n# %%")[1:]
                if not cell.startswith(" [markdown]")]
  notebook_cells = code_cells(read_notebook())
  assert len(twin_cells) == len(notebook_cells)
  for twin_cell, notebook_cell in zip(twin_cells, notebook_cells):
    for twin_line, line in zip(twin_cell.split("\n"), notebook_cell.split("\n"), strict=True):
      if line.lstrip().startswith(("!", "%")):
        assert twin_line.lstrip().startswith(("shell(", "line_magic(")), twin_line
      else:
        assert twin_line == line


def test_notebook_covers_install_data_devices_training_tensorboard_and_evaluation():
  notebook = read_notebook()
  assert notebook["metadata"]["accelerator"] == "TPU"
  assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
  settings = code_cells(notebook)[0]
  assert settings.startswith("# @title Settings") and 'SOURCE = ""  # @param' in settings
  code = "\n".join(code_cells(notebook))
  for needle in ("!pip install -q --no-deps -e .", "!pip install -q {shlex.join(PLAN)}",
                 "drive.mount(", "check_dataset_available(", "jax.devices()",
                 "configs/cifar10.py", "%load_ext tensorboard",
                 "%tensorboard --logdir {WORKDIR}", "cli.log_to_notebook()",
                 "train.train_and_evaluate(config, WORKDIR)",
                 "evaluate.evaluate_workdir(config, WORKDIR", "convert_inception"):
    assert needle in code, needle
  assert "requirements.txt" not in code  # our CPU pins would replace Colab's stack
  compile(TWIN.read_text(encoding="utf-8"), str(TWIN), "exec")


def _run_twin(monkeypatch, workdir, source: str, overrides=None) -> dict:
  monkeypatch.setenv("LPAAE_NOTEBOOK_SOURCE", source)
  monkeypatch.setenv("LPAAE_NOTEBOOK_CONFIG", "configs/test.py")
  monkeypatch.setenv("LPAAE_NOTEBOOK_WORKDIR", str(workdir / "run"))
  monkeypatch.setenv("LPAAE_NOTEBOOK_DATA_DIR", str(workdir / "data"))
  monkeypatch.setenv("LPAAE_NOTEBOOK_OVERRIDES", json.dumps(overrides or {}))
  monkeypatch.setenv("LPAAE_NOTEBOOK_EVAL_SAMPLES", "20")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.chdir(workdir)  # not a checkout: the code comes from SOURCE
  monkeypatch.setattr(sys, "path", list(sys.path))
  return runpy.run_path(str(TWIN), run_name="__main__")


def test_an_unset_source_stops_at_the_install_cell_with_one_line(tmp_path, monkeypatch):
  with pytest.raises(SystemExit) as stop:
    _run_twin(monkeypatch, tmp_path, source="")
  message = str(stop.value)
  assert message.startswith("SOURCE is empty: set it in the Settings cell") and "\n" not in message
  assert not (tmp_path / "run").exists()  # stopped before anything was written
  with pytest.raises(SystemExit, match=r"holds no lpaae_jax checkout"):
    _run_twin(monkeypatch, tmp_path, source=str(tmp_path))


def _install_cell_namespace() -> dict:
  namespace = {"os": os, "sys": sys, "USE_DRIVE": False, "SOURCE": "", "IN_COLAB": False}
  install_cell = code_cells(read_notebook())[1]
  script = "\n".join(script_line(line) for line in install_cell.split("\n"))
  cwd = os.getcwd()
  try:
    os.chdir(ROOT)
    exec(compile(script, "install cell", "exec"), namespace)  # pylint: disable=exec-used
  finally:
    os.chdir(cwd)
  return namespace


# Colab's TPU runtime today (v5e-1): Python 3.13, JAX 0.7.2 and the scientific stack, no
# TensorFlow, TensorBoard, tfds, clu or ml_collections. Its GPU runtime has TensorFlow.
COLAB_TPU_RUNTIME = {"jax": "0.7.2", "jaxlib": "0.7.2", "flax": "0.10.7", "optax": "0.2.5",
                     "orbax-checkpoint": "0.11.24", "numpy": "2.0.2", "scipy": "1.16.3",
                     "scikit-learn": "1.6.1", "matplotlib": "3.10.0", "pillow": "11.3.0",
                     "absl-py": "1.4.0", "etils": "1.13.0", "importlib-resources": "6.5.2"}
OURS_MISSING_THERE = {"tensorflow-cpu", "tensorboard", "tensorflow-datasets", "clu",
                      "ml-collections", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint"}


def test_install_plan_on_the_tpu_runtime_adds_tensorflow_and_keeps_what_fits():
  namespace = _install_cell_namespace()
  plan = namespace["install_plan"](
      namespace["REQUIREMENTS"] + ["jax[tpu]>=0.10.2,<0.11"], COLAB_TPU_RUNTIME.get)
  names = [re.match(r"[\w.-]+", requirement)[0].replace("_", "-") for requirement in plan]
  assert set(names) == OURS_MISSING_THERE, names  # numpy, scipy, ... stay as they are
  plan = list(map(Requirement, plan))
  for wanted in ("tensorflow-cpu>=2.20,<3", "jax[tpu]>=0.10.2,<0.11", "optax>=0.2.8,<0.3"):
    assert Requirement(wanted) in plan, wanted


def test_install_plan_keeps_a_fitting_tensorflow_build_and_upgrades_an_old_one():
  plan_with = _install_cell_namespace()["install_plan"]
  requirements = _install_cell_namespace()["REQUIREMENTS"]
  fitting = dict(COLAB_TPU_RUNTIME, tensorflow="2.20.0")  # the GPU runtime's build
  assert not any(r.startswith("tensorflow") and not r.startswith("tensorflow-datasets")
                 for r in plan_with(requirements, fitting.get))
  old = dict(COLAB_TPU_RUNTIME, tensorflow="2.19.0")
  assert Requirement("tensorflow>=2.20,<3") in map(Requirement, plan_with(requirements, old.get))


def test_twin_trains_and_evaluates_a_tiny_config_on_cpu(tmp_path, monkeypatch, capfd):
  """The twin end to end, its code taken from a folder (SOURCE = this checkout): the tiny
  config of the training tests (same compiled steps), steps_per_jit=4 over 4 iterations,
  mock MNIST, then the evaluation cell."""
  overrides = {"num_train_steps": 4, "log_every_steps": 4, "eval_every_steps": 4,
               "checkpoint_every_steps": 4, "steps_per_jit": 4,
               "eval.use_inception": False}  # InceptionV3 at 299x299 is too slow for CI
  with tfds.testing.mock_data(num_examples=64):
    namespace = _run_twin(monkeypatch, tmp_path, source=str(ROOT), overrides=overrides)
  assert not namespace["IN_COLAB"] and namespace["config"].steps_per_jit == 4
  workdir = tmp_path / "run"
  assert (workdir / "checkpoints" / "4").is_dir()
  metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
  assert metrics["step"] == 4 and "reconstruction_mse" in metrics
  output = capfd.readouterr()
  assert "(not in IPython, skipped: %tensorboard --logdir" in output.out
  # The training cell shows the loop's log lines: progress and the losses.
  assert "100.0% (4/4), ETA:" in output.err and "] [4] aae/code_disc_loss=" in output.err
  assert "Closing _NonBlockingMetadataStore" not in output.err  # Orbax's INFO chatter


if __name__ == "__main__":
  TWIN.write_text(notebook_to_script(read_notebook()), encoding="utf-8")
  print(f"wrote {os.path.relpath(TWIN)}")
