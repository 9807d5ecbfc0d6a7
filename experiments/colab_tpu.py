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
# **Runtime → Change runtime type → TPU**, then run the cells in order. The same code runs on
# any JAX backend: the training loop puts every device on a 1-D `data` mesh (8 TPU cores on a
# v2-8, one chip on a v5e-1), so nothing here is TPU-specific.
#
# `experiments/colab_tpu.py` is this notebook as a script, generated from it (`python -m
# tests.colab_notebook_test` rewrites it); `tests/colab_notebook_test.py` checks that both
# hold the same cells and runs the script on CPU with a tiny config. Shell (`!`) and magic
# (`%`) lines become `shell(...)` and `line_magic(...)` calls there.


# %%
# Settings: edit them here. (The CI run of the script twin sets LPAAE_NOTEBOOK_* instead.)
import json
import os
import sys

IN_COLAB = "google.colab" in sys.modules
# Git URL of the lpaae_jax repository; not needed when REPO_DIR (or the current directory)
# already holds a checkout, e.g. one copied to Drive.
REPO_URL = os.environ.get("LPAAE_NOTEBOOK_REPO_URL", "")
REPO_DIR = os.environ.get("LPAAE_NOTEBOOK_REPO_DIR", "/content/lpaae_jax")
# On Colab, keep checkpoints, TensorBoard logs and the dataset on Google Drive: they
# outlive the session, and rerunning the training cell resumes from the last checkpoint.
USE_DRIVE = IN_COLAB
STORAGE = "/content/drive/MyDrive/lpaae_jax" if USE_DRIVE else "/tmp/lpaae_jax"
CONFIG = os.environ.get("LPAAE_NOTEBOOK_CONFIG", "configs/cifar10.py:supervised")
WORKDIR = os.environ.get("LPAAE_NOTEBOOK_WORKDIR", f"{STORAGE}/cifar10_supervised")
DATA_DIR = os.environ.get("LPAAE_NOTEBOOK_DATA_DIR", f"{STORAGE}/tensorflow_datasets")
# Config overrides, dotted field -> value. steps_per_jit=10 runs 10 iterations per TPU call
# (the intervals of configs/cifar10.py are multiples of 10); e.g. add
# "num_train_steps": 20_000 for a shorter run than the paper's 100k iterations.
OVERRIDES = {"steps_per_jit": 10,
             **json.loads(os.environ.get("LPAAE_NOTEBOOK_OVERRIDES", "{}"))}
# Generated samples for FID/IS (the paper's table uses 50 000).
NUM_EVAL_SAMPLES = int(os.environ.get("LPAAE_NOTEBOOK_EVAL_SAMPLES", "10000"))


# %% [markdown]
# ## Install
#
# Clones the repository (unless this runtime already runs inside a checkout) and installs its
# pinned requirements with the TPU build of JAX. If pip reports conflicts with Colab's
# preinstalled packages, use **Runtime → Restart session** and run from the top.


# %%
if not os.path.isdir("lpaae_jax"):
  if not os.path.isdir(REPO_DIR):
    if not REPO_URL:
      raise ValueError(f"Set REPO_URL to the git URL of lpaae_jax, or put a checkout in "
                       f"{REPO_DIR}.")
    shell(f'git clone {REPO_URL} {REPO_DIR}')
  os.chdir(REPO_DIR)
if IN_COLAB:
  shell(f'pip install -q -r requirements.txt "jax[tpu]==0.10.2"')
sys.path.insert(0, os.getcwd())


# %% [markdown]
# ## Storage and data
#
# Mounts Google Drive (optional, see `USE_DRIVE`). tfds downloads and prepares the dataset
# into `DATA_DIR` on first use (CIFAR-10: about 160 MB); later sessions find it there.


# %%
if USE_DRIVE:
  from google.colab import drive
  drive.mount("/content/drive")
os.makedirs(WORKDIR, exist_ok=True)
os.makedirs(DATA_DIR, exist_ok=True)

import importlib

from lpaae_jax import input_pipeline

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
# Rerunning this cell, or the notebook in a new session with the same `WORKDIR`, resumes
# from the latest checkpoint and continues exactly as an uninterrupted run would.


# %%
from lpaae_jax import train

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
