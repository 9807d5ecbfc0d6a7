r"""Diagnostic: inference with the training's running BatchNorm averages vs. recalibrated
("precise BN") statistics, on finished fidelity runs.

  LPAAE_DATA_DIR=../shared/tfds python -m experiments.fidelity.bn_recalibration \
      --workdir=runs/fidelity --runs=sup_layer_3_seed0_w8_1500steps,... \
      --out=experiments/fidelity/results/bn_recalibration.md

For each run (a directory of --workdir made by experiments.fidelity.run), evaluates 2000
test images and 2000 generated samples in inference mode with (a) the running averages the
training left, (b) `lpaae_jax.recalibrate_batch_norm` over the run's first n training
batches, for each n of --batches, and (c) batch-statistics mode (each 250-image batch
normalised by its own statistics, so the decoder normalises encoder codes by encoder codes'
statistics and prior codes by prior codes', as each of its training passes does), reporting
the judge accuracy of the samples and of the reconstructions (as their true digit), the
reconstruction MSE and the std of the encoder codes (training mode gives about 1).
"""

import functools
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments.fidelity import run as fidelity
from lpaae_jax import checkpointing
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax import input_pipeline
from lpaae_jax import recalibrate_batch_norm
from lpaae_jax import forward
from lpaae_jax.evaluation import disentanglement, judge

BATCH = 250


def _define_flags() -> None:
  flags.DEFINE_string("workdir", "runs/fidelity", "The fidelity runs' workdir.")
  flags.DEFINE_list("runs", None, "Run directories, <variant>_seed<k>_w<width>_<steps>steps.")
  flags.DEFINE_string("judge", None, "The MNIST judge (default --workdir/judge).")
  flags.DEFINE_list("batches", ["10", "50", "200"], "Recalibration batch counts.")
  flags.DEFINE_string("out", "experiments/fidelity/results/bn_recalibration.md",
                      "Markdown output.")
  flags.mark_flags_as_required(["runs"])


def _forward(state, inputs, batch_stats_mode: bool):
  return forward.apply_fixed(state, inputs, batch_stats=batch_stats_mode)


@functools.partial(jax.jit, static_argnums=3)
def _decode(states, noise, s, batch_stats_mode):
  inputs = forward.prior_input_vector(states.spec, noise, s)
  codes = inputs if states.code_generator is None else _forward(
      states.code_generator, inputs, batch_stats_mode)
  return _forward(states.decoder, codes, batch_stats_mode)


@functools.partial(jax.jit, static_argnums=2)
def _encode_decode(states, images, batch_stats_mode):
  codes = _forward(states.encoder, images, batch_stats_mode)
  return codes, _forward(states.decoder, codes, batch_stats_mode)


def diagnose_states(config, states, judge_model, images, image_labels,
                    num_samples) -> dict[str, float]:
  """Judge accuracy of samples (conditional or cluster) and of reconstructions,
  reconstruction MSE and code std, in inference mode and in batch-statistics mode."""
  spec = states.spec
  key = evaluate.eval_keys(config)["samples"]
  row = {}
  for mode, name in ((False, "inference"), (True, "batch-stats")):
    labels, conditions = [], []
    for index, start in enumerate(range(0, num_samples, BATCH)):
      noise = jax.random.normal(jax.random.fold_in(key, index), (BATCH, spec.noise_size))
      s = disentanglement.balanced_conditions(BATCH, spec.num_classes, start)
      generated = _decode(states, noise, jnp.asarray(s) if spec.conditional else None, mode)
      labels.append(judge.judge_predict(judge_model, np.asarray(generated)))
      conditions.append(s)
    labels, conditions = np.concatenate(labels), np.concatenate(conditions)
    row[f"{name} judge acc."] = (
        disentanglement.conditional_accuracy(labels, conditions)
        if spec.condition == "supervised"
        else disentanglement.cluster_accuracy(labels, conditions, spec.num_classes)
        if spec.condition == "unsupervised" else float("nan"))
    codes, recs = zip(*(_encode_decode(states, images[i:i + BATCH], mode)
                        for i in range(0, len(images), BATCH)))
    recs = np.concatenate(recs)
    row[f"{name} rec. MSE"] = float(np.mean((recs - images) ** 2))
    row[f"{name} rec. judge acc."] = float(np.mean(judge.judge_predict(judge_model, recs)
                                                   == image_labels))
    row[f"{name} code std"] = float(np.std(np.concatenate(codes)))
  return row


def _parse_run(name: str) -> tuple[str, int, int, int]:
  """'<variant>_seed<k>_w<width>_<steps>steps' -> (variant, seed, width, steps)."""
  variant, rest = name.rsplit("_seed", 1)
  seed, width, steps = rest.split("_")
  return variant, int(seed), int(width[1:]), int(steps[:-len("steps")])


def _table_row(run: str, statistics: str, row: dict[str, float], mode: str) -> str:
  return (f"| {run} | {statistics} | {row[f'{mode} judge acc.']:.3f} | "
          f"{row[f'{mode} rec. judge acc.']:.3f} | {row[f'{mode} rec. MSE']:.3f} | "
          f"{row[f'{mode} code std']:.2f} |")


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  judge_path = FLAGS.judge or os.path.join(FLAGS.workdir, "judge")
  judge_model = judge.load_judge(judge_path, dataset="mnist")
  lines = []
  for name in FLAGS.runs:
    variant, seed, width, steps = _parse_run(name)
    config = fidelity.variant_config(variant, seed, steps=steps, width=width, num_samples=2000,
                                     judge_path=judge_path, data_dir=None)
    images, image_labels = input_pipeline.load_split_arrays(config, "test", num=2000)
    states, _ = checkpointing.restore_latest(config, os.path.join(FLAGS.workdir, name))
    rows = {"running averages": diagnose_states(config, states, judge_model, images,
                                                image_labels, 2000)}
    for count in map(int, FLAGS.batches):
      batches = input_pipeline.create_train_iterator(config, end_step=count)
      recalibrated = recalibrate_batch_norm(states, batches, jax.random.key(0))
      rows[f"recalibrated, {count} batches"] = diagnose_states(
          config, recalibrated, judge_model, images, image_labels, 2000)
    lines += [_table_row(name, mode, row, "inference") for mode, row in rows.items()]
    # Batch-statistics mode does not read the running averages: one row per run.
    lines.append(_table_row(name, "batch statistics", rows["running averages"], "batch-stats"))
  text = "\n".join(["# Running BatchNorm averages vs. recalibrated statistics", "",
                    __doc__.split("\n\n", 2)[2].strip(), "",
                    "| run | BatchNorm statistics | judge acc. of samples | "
                    "rec. judge acc. | rec. MSE | code std |", "|---|---|---|---|---|---|"]
                   + lines) + "\n"
  file_utils.write_atomically(FLAGS.out, lambda f: f.write(text.encode("utf-8")))
  print(text)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
