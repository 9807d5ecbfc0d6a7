"""experiments/colab_tpu.ipynb as a script (generated: edit the notebook, then run
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


# %% [markdown]
# # LPAAE on a Colab TPU
#
# Trains the CIFAR-10 configuration of `lpaae_jax` ("Learning Priors for Adversarial
# Autoencoders") on a Colab TPU, shows TensorBoard, and evaluates the trained model (FID,
# Inception Score, k-means of the codes, figures).
#
# **Runtime → Change runtime type → v5e-1 TPU** (Colab's TPU today: one v5e chip, Python
# 3.13, JAX preinstalled, no TensorFlow or TensorBoard), set **SOURCE** in the first cell, then
# **Runtime → Run all**. The same code runs on any JAX backend (a GPU runtime, a CPU): the
# training loop puts every device on a 1-D `data` mesh, so nothing here is TPU-specific.
#
# `experiments/colab_tpu.py` is this notebook as a script, generated from it (`python -m
# tests.colab_notebook_test` rewrites it); `tests/colab_notebook_test.py` checks that both
# hold the same cells and runs the script on CPU with a tiny config. Shell (`!`) and magic
# (`%`) lines become `shell(...)` and `line_magic(...)` calls there.


# %%
# @title Settings
# SOURCE: where the lpaae_jax code comes from, a git URL (cloned to /content/lpaae_jax) or a
# Google Drive folder holding a checkout (e.g. /content/drive/MyDrive/lpaae_jax).
SOURCE = ""  # @param {type:"string"}
CONFIG = "configs/cifar10.py:supervised"  # @param {type:"string"}
# On Colab, keep checkpoints, TensorBoard logs and the dataset on Google Drive: they
# outlive the session, and rerunning the training cell resumes from the last checkpoint.
USE_DRIVE = True  # @param {type:"boolean"}
# Generated samples for FID/IS (the paper's table uses 50 000).
NUM_EVAL_SAMPLES = 10000  # @param {type:"integer"}

import json
import os
import sys

# The CI run of the script twin sets LPAAE_NOTEBOOK_* instead of the fields above.
SOURCE = os.environ.get("LPAAE_NOTEBOOK_SOURCE", SOURCE)
CONFIG = os.environ.get("LPAAE_NOTEBOOK_CONFIG", CONFIG)
NUM_EVAL_SAMPLES = int(os.environ.get("LPAAE_NOTEBOOK_EVAL_SAMPLES", NUM_EVAL_SAMPLES))
IN_COLAB = "google.colab" in sys.modules
USE_DRIVE = USE_DRIVE and IN_COLAB
STORAGE = "/content/drive/MyDrive/lpaae_jax_runs" if USE_DRIVE else "/tmp/lpaae_jax"
RUN_NAME = CONFIG.removeprefix("configs/").replace(".py", "").replace(":", "_")
WORKDIR = os.environ.get("LPAAE_NOTEBOOK_WORKDIR", f"{STORAGE}/{RUN_NAME}")
DATA_DIR = os.environ.get("LPAAE_NOTEBOOK_DATA_DIR", f"{STORAGE}/tensorflow_datasets")
# Config overrides, dotted field -> value. steps_per_jit=10 runs 10 iterations per TPU call
# (the intervals of configs/cifar10.py are multiples of 10); e.g. add
# "num_train_steps": 20_000 for a shorter run than the paper's 100k iterations.
OVERRIDES = {"steps_per_jit": 10,
             **json.loads(os.environ.get("LPAAE_NOTEBOOK_OVERRIDES", "{}"))}


# %% [markdown]
# ## Code and install
#
# Mounts Google Drive (see `USE_DRIVE`), takes the code from `SOURCE` (unless this runtime
# already runs inside a checkout) and installs only what the runtime lacks or holds in a
# version outside our ranges (`install_plan`): on the TPU runtime TensorFlow's CPU build (it
# feeds `tf.data` and writes the summaries) and TensorBoard, `lpaae_jax` itself, JAX with the
# accelerator's extra (`jax[tpu]` brings the matching jaxlib and libtpu) and the JAX
# libraries. What the runtime has in a compatible version (NumPy, SciPy, a GPU runtime's
# TensorFlow, ...) stays. If pip upgraded a package Colab had already imported, use
# **Runtime → Restart session** and run all again.


# %%
import glob
import importlib.metadata
import shlex
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if USE_DRIVE or SOURCE.startswith("/content/drive"):
  from google.colab import drive
  drive.mount("/content/drive")
if not os.path.isfile("lpaae_jax/__init__.py"):  # not already inside a checkout
  if not SOURCE:
    raise SystemExit("SOURCE is empty: set it in the Settings cell to the git URL of "
                     "lpaae_jax or to a Drive folder holding a checkout, then run all again.")
  if "://" in SOURCE or SOURCE.startswith("git@"):
    CHECKOUT = "/content/lpaae_jax"
    if not os.path.isdir(CHECKOUT):
      shell(f'git clone -q {SOURCE} {CHECKOUT}')
  else:
    CHECKOUT = SOURCE
  if not os.path.isfile(os.path.join(CHECKOUT, "lpaae_jax", "__init__.py")):
    raise SystemExit(f"SOURCE={SOURCE}: {CHECKOUT} holds no lpaae_jax checkout; set "
                     "SOURCE to the git URL or to the Drive folder that has lpaae_jax/ in it.")
  os.chdir(CHECKOUT)
sys.path.insert(0, os.getcwd())

with open("pyproject.toml", "rb") as pyproject:
  PROJECT = tomllib.load(pyproject)["project"]
if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*") or "COLAB_TPU_ADDR" in os.environ:
  ACCELERATOR = "tpu"
elif glob.glob("/dev/nvidia[0-9]*"):
  ACCELERATOR = "cuda12"
else:
  ACCELERATOR = None


def install_plan(requirements, version_of):
  """The requirements (ours, for this platform) that the runtime lacks or holds in a version
  outside their range; version_of(distribution) is the installed version or None. Either
  TensorFlow build, tensorflow or tensorflow-cpu, serves tf.data."""
  plan = []
  for line in requirements:
    requirement = Requirement(line)
    if requirement.marker is not None and not requirement.marker.evaluate():
      continue
    names = [canonicalize_name(requirement.name)]
    if names[0] in ("tensorflow", "tensorflow-cpu"):
      names = ["tensorflow", "tensorflow-cpu"]
    installed = {name: version_of(name) for name in names if version_of(name)}
    if requirement.extras or not any(requirement.specifier.contains(version)
                                     for version in installed.values()):
      name = next(iter(installed), requirement.name)  # upgrade the build that is there
      extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
      plan.append(f"{name}{extras}{requirement.specifier}")
  return plan


def installed_version(distribution):
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None


REQUIREMENTS = PROJECT["dependencies"] + PROJECT["optional-dependencies"].get(ACCELERATOR, [])
PLAN = install_plan(REQUIREMENTS, installed_version)
print("to install:", " ".join(PLAN) or "nothing")
if IN_COLAB:
  shell(f'pip install -q --no-deps -e .')
  if PLAN:
    shell(f'pip install -q {shlex.join(PLAN)}')


# %% [markdown]
# ## Data
#
# tfds downloads and prepares the dataset into `DATA_DIR` on first use (CIFAR-10: about
# 160 MB); later sessions find it there.


# %%
import importlib

from lpaae_jax import input_pipeline

os.makedirs(WORKDIR, exist_ok=True)
os.makedirs(DATA_DIR, exist_ok=True)
module_path, _, variant = CONFIG.partition(":")
config_module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
config = config_module.get_config(variant or None)
config.data_dir = DATA_DIR
for field, value in OVERRIDES.items():
  node = config
  *parents, leaf = field.split(".")
  for parent in parents:
    node = node[parent]
  node[leaf] = value
input_pipeline.check_dataset_available(config)  # downloads and prepares it when missing
print(config)


# %% [markdown]
# ## Devices


# %%
import jax

print(f"JAX {jax.__version__}, backend {jax.default_backend()}, "
      f"{jax.device_count()} device(s):")
print(jax.devices())


# %% [markdown]
# ## FID Inception weights
#
# FID and the Inception Score need pytorch-fid's Inception weights, converted once to `.npz`
# (no PyTorch needed). Without them the evaluation reports FID/IS as unavailable and computes
# everything else.


# %%
INCEPTION_NPZ = os.path.expanduser("~/.cache/lpaae_jax/pt_inception-2015-12-05.npz")
if IN_COLAB and not os.path.exists(INCEPTION_NPZ):
  shell(f'wget -q -nc https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth')
  shell(f'python -m lpaae_jax.evaluation.convert_inception --pth=pt_inception-2015-12-05-6726825d.pth --out={INCEPTION_NPZ}')


# %% [markdown]
# ## TensorBoard
#
# Every loss term, the discriminators' probabilities, steps/s, sample grids and
# reconstructions; refresh it while training runs.


# %%
line_magic(f'load_ext tensorboard')
line_magic(f'tensorboard --logdir {WORKDIR}')


# %% [markdown]
# ## Train
#
# Logs the losses, the discriminators' probabilities and the progress with its ETA below
# the cell. Rerunning this cell, or the notebook in a new session with the same `WORKDIR`,
# resumes from the latest checkpoint and continues exactly as an uninterrupted run would.


# %%
from lpaae_jax import cli
from lpaae_jax import train

cli.log_to_notebook()  # the commands' log: progress with ETA, metrics, checkpoints
states = train.train_and_evaluate(config, WORKDIR)


# %% [markdown]
# ## Evaluate
#
# Restores the latest checkpoint and writes `WORKDIR/eval/metrics.json`, the Figure-3 sample
# grid, reconstructions and the Figure-4 t-SNE (also to TensorBoard).


# %%
import matplotlib.pyplot as plt

from lpaae_jax import evaluate

results = evaluate.evaluate_workdir(config, WORKDIR, num_samples=NUM_EVAL_SAMPLES)
print(json.dumps(evaluate.scalar_metrics(results), indent=2, sort_keys=True))
print("unavailable:", results["unavailable"])
for name in ("samples_grid.png", "reconstructions.png", "tsne.png"):
  plt.figure(figsize=(8, 8))
  plt.imshow(plt.imread(os.path.join(WORKDIR, "eval", name)))
  plt.axis("off")
  plt.title(name)
plt.show()
plt.close("all")
