"""A small CNN "judge" classifier of real images, for the disentanglement metrics.

The judge is trained once per dataset on its real training split and then reads the class
of generated images (conditional and cluster accuracy, `disentanglement.py`):

  python -m lpaae_jax.evaluation.judge --config=configs/mnist.py --out=judges/mnist

writes `judges/mnist/judge.json` (measured test accuracy, dataset, steps, architecture) and
`judges/mnist/judge_params.msgpack` (flax.serialization). Expected: about 99% test accuracy
on MNIST with the default 5000 steps (a few minutes on a CPU).

Public API:
  JudgeCNN                                  the network ((N, 32, 32, C) in [-1, 1] -> logits)
  train_judge(config, num_steps=...)        -> (params, info)
  save_judge(out_dir, params, info)         -> path of judge.json
  load_judge(path, dataset=None)            -> Judge (path: the --out dir or either file)
  judge_outputs(judge, images, ...)         -> {"logits", "features" (hidden layer)}, numpy
  judge_fn(judge, images, batch_size=...)   -> logits (N, num_classes), numpy
  judge_predict(judge, images)              -> labels (N,), numpy
"""

import dataclasses
import functools
import json
import os
import time
from collections.abc import Sequence
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags, logging
from flax import serialization, traverse_util
from ml_collections import config_flags

from lpaae_jax import backend
from lpaae_jax import cli
from lpaae_jax import errors
from lpaae_jax import file_utils
from lpaae_jax import input_pipeline
from lpaae_jax import states

JSON_NAME = "judge.json"
PARAMS_NAME = "judge_params.msgpack"
FORMAT_VERSION = 1
DEFAULT_STEPS = 5000
DEFAULT_BATCH_SIZE = 128
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_WIDTHS = (32, 64, 128)
DEFAULT_HIDDEN = 256
GROUPS = 8  # GroupNorm groups per conv (with group_norm)


class JudgeUnavailableError(errors.LpaaeError, RuntimeError):
  """The judge files are missing, unreadable or made for another dataset."""


class JudgeCNN(nn.Module):
  """Stages of `convs_per_stage` conv3x3[-GroupNorm]-ReLU, each then max-pooled
  (32->16->8->4), then Dense-ReLU-Dense logits.

  No BatchNorm or dropout (GroupNorm normalises each image by itself): params are the only
  state, so eval is a pure function of one image.
  """
  num_classes: int = 10
  widths: Sequence[int] = DEFAULT_WIDTHS
  hidden: int = DEFAULT_HIDDEN
  convs_per_stage: int = 1
  group_norm: bool = False

  @nn.compact
  def __call__(self, images, return_features: bool = False):
    x = images
    for width in self.widths:
      for _ in range(self.convs_per_stage):
        x = nn.Conv(width, (3, 3), use_bias=not self.group_norm)(x)
        if self.group_norm:
          x = nn.GroupNorm(num_groups=min(GROUPS, width))(x)
        x = nn.relu(x)
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    features = nn.relu(nn.Dense(self.hidden)(x))
    logits = nn.Dense(self.num_classes)(features)
    return (logits, features) if return_features else logits


@dataclasses.dataclass(frozen=True)
class Judge:
  """A loaded judge: network, params and the info saved with it (judge.json)."""
  module: JudgeCNN
  params: Any
  info: dict
  path: str

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.info["image_shape"])


# --- Training ------------------------------------------------------------------------------


def _module_from_info(info: dict) -> JudgeCNN:
  # Judges saved before the fields existed have one conv per stage and no normalisation.
  return JudgeCNN(num_classes=int(info["num_classes"]), widths=tuple(info["widths"]),
                  hidden=int(info["hidden"]), convs_per_stage=int(info.get("convs_per_stage", 1)),
                  group_norm=bool(info.get("group_norm", False)))


def augment_batch(key, images):
  """Random horizontal flips and translations by up to 4 pixels (zero-padded crops of
  the [-1, 1] image: the standard CIFAR-10 augmentation), image by image."""
  flip_key, shift_key = jax.random.split(key)
  flip = jax.random.bernoulli(flip_key, 0.5, (images.shape[0], 1, 1, 1))
  images = jnp.where(flip, images[:, :, ::-1], images)
  size = images.shape[1]
  padded = jnp.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  shifts = jax.random.randint(shift_key, (images.shape[0], 2), 0, 9)
  crop = lambda image, shift: jax.lax.dynamic_slice(
      image, (shift[0], shift[1], 0), (size, size, image.shape[-1]))
  return jax.vmap(crop)(padded, shifts)


def _train_step(module: JudgeCNN, tx: optax.GradientTransformation, augment: bool, params,
                opt_state, images, labels, key):
  if augment:
    images = augment_batch(key, images)

  def loss_fn(params):
    logits = module.apply({"params": params}, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def _jitted_train_step(module: JudgeCNN, tx: optax.GradientTransformation, augment: bool,
                       compiler_options):
  """The train step compiled with the backend's compiler options (faster on XLA:CPU)."""
  return jax.jit(functools.partial(_train_step, module, tx, augment),
                 compiler_options=dict(compiler_options) or None)


def train_judge(config: ml_collections.ConfigDict, *, num_steps: int = DEFAULT_STEPS,
                batch_size: int = DEFAULT_BATCH_SIZE,
                learning_rate: float = DEFAULT_LEARNING_RATE, seed: int = 0,
                num_test: Optional[int] = None, widths: Sequence[int] = DEFAULT_WIDTHS,
                hidden: int = DEFAULT_HIDDEN, convs_per_stage: int = 1,
                group_norm: bool = False, augment: bool = False, cosine_decay: bool = False,
                log_every: int = 500) -> tuple[Any, dict]:
  """Trains a judge on `config.train_split` of `config.dataset`; tests on `config.eval_split`.

  Batches come from the project's input pipeline (same preprocessing as the model).
  `augment`: random flips and 4-pixel shifts of every training image; `cosine_decay`: the
  learning rate falls to 0 along a cosine over the steps (else constant). The defaults
  train the original judge (one conv per stage, no normalisation or augmentation).
  Returns (params, info); info holds the measured `test_accuracy` on the first `num_test`
  eval images (all when None) and everything `load_judge` needs to rebuild the network.
  """
  if num_steps < 1:
    raise ValueError(f"num_steps={num_steps} must be >= 1.")
  data_config = config.copy_and_resolve_references()
  data_config.batch_size = batch_size
  data_config.seed = seed
  image_shape = (int(config.model.image_size),) * 2 + (int(config.model.channels),)
  module = JudgeCNN(num_classes=int(config.model.num_classes), widths=tuple(widths),
                    hidden=int(hidden), convs_per_stage=int(convs_per_stage),
                    group_norm=bool(group_norm))
  params = module.init(jax.random.key(seed), jnp.zeros((1, *image_shape)))["params"]
  augment_key = jax.random.fold_in(jax.random.key(seed), 1)
  tx = (optax.adam(optax.cosine_decay_schedule(float(learning_rate), num_steps))
        if cosine_decay else states.adam(float(learning_rate)))
  opt_state = tx.init(params)
  batches = input_pipeline.create_train_iterator(data_config, end_step=num_steps,
                                                 process_index=0, process_count=1)
  largest_activation = batch_size * image_shape[0] * image_shape[1] * max(widths) * 4
  train_step = _jitted_train_step(module, tx, bool(augment), backend.from_config(
      config).compiler_options(largest_activation))
  start = time.time()
  for step, batch in enumerate(batches, start=1):
    params, opt_state, loss = train_step(params, opt_state, jnp.asarray(batch["image"]),
                                         jnp.asarray(batch["label"]),
                                         jax.random.fold_in(augment_key, step))
    if log_every and (step % log_every == 0 or step == num_steps):
      logging.info("judge step %d/%d: loss %.4f (%.1f s)", step, num_steps, float(loss),
                   time.time() - start)

  test_images, test_labels = input_pipeline.load_split_arrays(config, config.eval_split,
                                                              num=num_test)
  judge = Judge(module=module, params=params, info={"image_shape": image_shape}, path="")
  predictions = judge_predict(judge, test_images)
  info = {
      "format_version": FORMAT_VERSION,
      "dataset": config.dataset,
      "train_split": config.train_split,
      "eval_split": config.eval_split,
      "test_accuracy": float(np.mean(predictions == test_labels)),
      "num_test": int(len(test_labels)),
      "steps": int(num_steps),
      "batch_size": int(batch_size),
      "learning_rate": float(learning_rate),
      "seed": int(seed),
      "num_classes": module.num_classes,
      "widths": list(module.widths),
      "hidden": module.hidden,
      "convs_per_stage": module.convs_per_stage,
      "group_norm": module.group_norm,
      "augment": bool(augment),
      "cosine_decay": bool(cosine_decay),
      "image_shape": list(image_shape),
      "params_file": PARAMS_NAME,
      "train_seconds": round(time.time() - start, 1),
  }
  return params, info


# --- Files ---------------------------------------------------------------------------------


def save_judge(out_dir: str, params, info: dict) -> str:
  """Writes judge_params.msgpack, then judge.json (last, so its presence means complete)."""
  params_bytes = serialization.msgpack_serialize(jax.device_get(params))
  file_utils.write_atomically(os.path.join(out_dir, PARAMS_NAME),
                              lambda f: f.write(params_bytes))
  json_path = os.path.join(out_dir, JSON_NAME)
  info_bytes = (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
  file_utils.write_atomically(json_path, lambda f: f.write(info_bytes))
  return json_path


def _make_command(dataset: Optional[str], out_dir: str) -> str:
  config_name = dataset if dataset in ("mnist", "cifar10") else (
      "svhn" if dataset == "svhn_cropped" else "<dataset>")
  return (f"python -m lpaae_jax.evaluation.judge --config=configs/{config_name}.py "
          f"--out={out_dir}")


def _unavailable(file: str, reason: str, dataset: Optional[str], out_dir: str):
  return JudgeUnavailableError(f"Judge classifier unusable: {file}: {reason}. Make one with: "
                               f"{_make_command(dataset, out_dir)}")


def _json_path(path: str) -> str:
  # The --out directory, or a file in it (so a missing path reads as a missing directory).
  path = os.path.expanduser(os.fspath(path))
  if path.endswith(".json") and not os.path.isdir(path):
    return path
  if path.endswith(".msgpack") and not os.path.isdir(path):
    return os.path.join(os.path.dirname(path), JSON_NAME)
  return os.path.join(path, JSON_NAME)


def _first_line(error: BaseException) -> str:
  return f"{type(error).__name__}: {errors.first_line(error)}"


def load_judge(path: str, dataset: Optional[str] = None) -> Judge:
  """Loads a judge from its --out directory (or judge.json / judge_params.msgpack in it).

  `dataset`: the dataset the judge must have been trained on (e.g. config.dataset).
  Any problem (missing, corrupt, wrong shapes, other dataset) raises a one-line
  JudgeUnavailableError naming the file and the command that makes the judge.
  """
  json_path = _json_path(path)
  out_dir = os.path.dirname(json_path) or "."
  if not os.path.isfile(json_path):
    raise _unavailable(json_path, "no such file", dataset, out_dir)
  try:
    with open(json_path, encoding="utf-8") as json_file:
      info = json.load(json_file)
    module = _module_from_info(info)
    image_shape = tuple(int(d) for d in info["image_shape"])
    params_path = os.path.join(out_dir, info.get("params_file", PARAMS_NAME))
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise _unavailable(json_path, f"unreadable judge info ({_first_line(error)})", dataset,
                       out_dir) from None
  if dataset is not None and info.get("dataset") != dataset:
    raise _unavailable(json_path, f"judge was trained on {info.get('dataset')!r}, not "
                       f"{dataset!r}", dataset, out_dir)
  if not os.path.isfile(params_path):
    raise _unavailable(params_path, "no such file", info.get("dataset"), out_dir)
  try:
    with open(params_path, "rb") as params_file:
      restored = serialization.msgpack_restore(params_file.read())
  except Exception as error:  # pylint: disable=broad-except  (msgpack raises many types)
    raise _unavailable(params_path, f"corrupt params ({_first_line(error)})",
                       info.get("dataset"), out_dir) from None
  expected = jax.eval_shape(module.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))["params"]
  params = _check_params(restored, expected, params_path, info.get("dataset"), out_dir)
  return Judge(module=module, params=params, info=info, path=json_path)


def _check_params(restored, expected, params_path: str, dataset, out_dir: str):
  flat_expected = traverse_util.flatten_dict(expected)
  flat_restored = traverse_util.flatten_dict(restored) if isinstance(restored, dict) else {}
  if set(flat_restored) != set(flat_expected):
    raise _unavailable(params_path, "params do not match the architecture in "
                       f"{JSON_NAME}", dataset, out_dir)
  for key, leaf in flat_expected.items():
    value = flat_restored[key]
    if not isinstance(value, np.ndarray) or value.shape != leaf.shape:
      raise _unavailable(params_path, f"param {'/'.join(key)} has shape "
                         f"{getattr(value, 'shape', None)}, expected {leaf.shape}", dataset,
                         out_dir)
  return jax.device_put(traverse_util.unflatten_dict(
      {key: np.asarray(value, np.float32) for key, value in flat_restored.items()}))


# --- Inference -----------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _logits_and_features(module: JudgeCNN, params, images):
  return module.apply({"params": params}, images, return_features=True)


def judge_outputs(judge: Judge, images, batch_size: int = 500) -> dict[str, np.ndarray]:
  """{"logits": (N, num_classes), "features": (N, hidden)} of images in [-1, 1]
  (N, 32, 32, C), jitted in fixed batches. The features (the hidden layer) are the judge's
  embedding for a Frechet distance where Inception is too slow or does not fit (MNIST)."""
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[1:] != judge.image_shape:
    raise ValueError(f"judge images must be (N, {', '.join(map(str, judge.image_shape))}) in "
                     f"[-1, 1]; got shape {images.shape}.")
  batch_size = max(1, min(batch_size, len(images)))
  outputs = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    num_real = len(batch)
    if num_real < batch_size:  # Pad: one compiled shape for every batch.
      batch = np.concatenate([batch, np.zeros((batch_size - num_real, *batch.shape[1:]),
                                              batch.dtype)])
    logits, features = _logits_and_features(judge.module, judge.params, batch)
    outputs.append((np.asarray(logits)[:num_real], np.asarray(features)[:num_real]))
  if not outputs:
    return {"logits": np.zeros((0, judge.module.num_classes), np.float32),
            "features": np.zeros((0, judge.module.hidden), np.float32)}
  return {"logits": np.concatenate([o[0] for o in outputs]),
          "features": np.concatenate([o[1] for o in outputs])}


def judge_fn(judge: Judge, images, batch_size: int = 500) -> np.ndarray:
  """Logits (N, num_classes) of images in [-1, 1] (N, 32, 32, C)."""
  return judge_outputs(judge, images, batch_size)["logits"]


def judge_predict(judge: Judge, images, batch_size: int = 500) -> np.ndarray:
  """Judge labels (N,) int of images in [-1, 1]."""
  return np.argmax(judge_fn(judge, images, batch_size), axis=-1)


# --- Command line --------------------------------------------------------------------------


def _define_flags() -> dict:
  # Defined only when run as a script: this module is also a library, and the evaluation
  # CLI defines its own --config.
  return {
      "config": config_flags.DEFINE_config_file(
          "config", None, "Dataset config, e.g. configs/mnist.py (dataset, splits, data_dir)."),
      "out": flags.DEFINE_string("out", None, "Output directory of judge.json and the params."),
      "steps": flags.DEFINE_integer("steps", DEFAULT_STEPS, "Training steps."),
      "batch_size": flags.DEFINE_integer("batch_size", DEFAULT_BATCH_SIZE, "Batch size."),
      "learning_rate": flags.DEFINE_float("learning_rate", DEFAULT_LEARNING_RATE, "Adam rate."),
      "seed": flags.DEFINE_integer("seed", 0, "Init and data-order seed."),
      "widths": flags.DEFINE_list("widths", list(map(str, DEFAULT_WIDTHS)),
                                  "Channels of each stage."),
      "convs_per_stage": flags.DEFINE_integer("convs_per_stage", 1, "3x3 convs per stage."),
      "group_norm": flags.DEFINE_bool("group_norm", False, "GroupNorm after every conv."),
      "augment": flags.DEFINE_bool("augment", False, "Random flips and 4-pixel shifts."),
      "cosine_decay": flags.DEFINE_bool("cosine_decay", False,
                                        "Cosine decay of the learning rate to 0."),
  }


def main(argv, cli_flags: dict):
  if len(argv) > 1:
    raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
  params, info = train_judge(cli_flags["config"].value, num_steps=cli_flags["steps"].value,
                             batch_size=cli_flags["batch_size"].value,
                             learning_rate=cli_flags["learning_rate"].value,
                             seed=cli_flags["seed"].value,
                             widths=[int(w) for w in cli_flags["widths"].value],
                             convs_per_stage=cli_flags["convs_per_stage"].value,
                             group_norm=cli_flags["group_norm"].value,
                             augment=cli_flags["augment"].value,
                             cosine_decay=cli_flags["cosine_decay"].value)
  path = save_judge(cli_flags["out"].value, params, info)
  print(f"judge test accuracy {info['test_accuracy']:.4f} on {info['num_test']} "
        f"{info['dataset']} {info['eval_split']} images ({info['steps']} steps) -> {path}")


if __name__ == "__main__":
  _cli_flags = _define_flags()
  flags.mark_flags_as_required(["config", "out"])
  cli.run(functools.partial(main, cli_flags=_cli_flags))
