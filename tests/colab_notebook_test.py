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
import runpy
import sys

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
  code = "\n".join(code_cells(notebook))
  for needle in ("pip install -q -r requirements.txt \"jax[tpu]", "drive.mount(",
                 "check_dataset_available(", "jax.devices()", "configs/cifar10.py",
                 "%load_ext tensorboard", "%tensorboard --logdir {WORKDIR}",
                 "train.train_and_evaluate(config, WORKDIR)",
                 "evaluate.evaluate_workdir(config, WORKDIR", "convert_inception"):
    assert needle in code, needle
  compile(TWIN.read_text(encoding="utf-8"), str(TWIN), "exec")


def test_twin_trains_and_evaluates_a_tiny_config_on_cpu(tmp_path, monkeypatch, capsys):
  """The twin end to end: the tiny config of the training tests (same compiled steps),
  steps_per_jit=4 over 4 iterations, mock MNIST, then the evaluation cell."""
  overrides = {"num_train_steps": 4, "log_every_steps": 4, "eval_every_steps": 4,
               "checkpoint_every_steps": 4, "steps_per_jit": 4,
               "eval.use_inception": False}  # InceptionV3 at 299x299 is too slow for CI
  workdir = tmp_path / "run"
  monkeypatch.setenv("LPAAE_NOTEBOOK_CONFIG", "configs/test.py")
  monkeypatch.setenv("LPAAE_NOTEBOOK_WORKDIR", str(workdir))
  monkeypatch.setenv("LPAAE_NOTEBOOK_DATA_DIR", str(tmp_path / "data"))
  monkeypatch.setenv("LPAAE_NOTEBOOK_OVERRIDES", json.dumps(overrides))
  monkeypatch.setenv("LPAAE_NOTEBOOK_EVAL_SAMPLES", "20")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.chdir(ROOT)  # a checkout: the install cell clones and installs nothing
  monkeypatch.setattr(sys, "path", list(sys.path))
  with tfds.testing.mock_data(num_examples=64):
    namespace = runpy.run_path(str(TWIN), run_name="__main__")
  assert not namespace["IN_COLAB"] and namespace["config"].steps_per_jit == 4
  assert (workdir / "checkpoints" / "4").is_dir()
  metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
  assert metrics["step"] == 4 and "reconstruction_mse" in metrics
  output = capsys.readouterr().out
  assert "(not in IPython, skipped: %tensorboard --logdir" in output


if __name__ == "__main__":
  TWIN.write_text(notebook_to_script(read_notebook()), encoding="utf-8")
  print(f"wrote {os.path.relpath(TWIN)}")
