r"""Diagnostic: how much of each study run's quality is lost to inference-mode BatchNorm.

  LPAAE_DATA_DIR=../shared/tfds python -m experiments.mnist_cpu_study.bn_diagnosis \
      --workdir=runs/mnist_cpu_study --out=experiments/mnist_cpu_study/results/bn_diagnosis.md

For every finished run of the study, compares the library's inference mode (running
BatchNorm averages, as `lpaae_jax.evaluate` uses) with batch-statistics mode (each 250-image
batch normalised by its own statistics, as in training; nothing is updated) on:
judge accuracy of generated digits (conditional accuracy, supervised; Hungarian-matched
cluster accuracy, unsupervised), reconstruction MSE of 2000 test images, and the std of the
encoder codes. A diagnostic, not a metric of the library: it tells whether the running
averages describe the trained networks.
"""

import functools
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import run_utils
from experiments.mnist_cpu_study import run as study
from lpaae_jax import checkpointing
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax import input_pipeline
from lpaae_jax import train_steps
from lpaae_jax.evaluation import disentanglement, judge

BATCH = 250


def _define_flags() -> None:
  flags.DEFINE_string("workdir", "runs/mnist_cpu_study", "The study's workdir.")
  flags.DEFINE_string("out", "experiments/mnist_cpu_study/results/bn_diagnosis.md",
                      "Markdown output.")
  flags.DEFINE_integer("num_samples", 2000, "Generated samples per run and mode.")


def _forward(state, inputs, batch_stats_mode: bool):
  if batch_stats_mode and state.batch_stats:
    return train_steps.apply_train(state, state.params, state.batch_stats, inputs)[0]
  return train_steps.apply_eval(state, inputs)


@functools.partial(jax.jit, static_argnums=3)
def _decode(states, noise, s, batch_stats_mode):
  inputs = train_steps.prior_input_vector(states.spec, noise, s)
  codes = inputs if states.code_generator is None else _forward(
      states.code_generator, inputs, batch_stats_mode)
  return _forward(states.decoder, codes, batch_stats_mode)


@functools.partial(jax.jit, static_argnums=2)
def _encode_decode(states, images, batch_stats_mode):
  codes = _forward(states.encoder, images, batch_stats_mode)
  return codes, _forward(states.decoder, codes, batch_stats_mode)


def diagnose(config, workdir, judge_model, images, num_samples) -> dict[str, float]:
  states, _ = checkpointing.restore_latest(config, workdir)
  spec = states.spec
  key = evaluate.eval_keys(config)["samples"]
  row = {}
  for mode, name in ((False, "inference"), (True, "batch-stats")):
    labels, conditions = [], []
    for index, start in enumerate(range(0, num_samples, BATCH)):
      noise = jax.random.normal(jax.random.fold_in(key, index), (BATCH, spec.noise_size))
      s = disentanglement.balanced_conditions(BATCH, spec.num_classes, start)
      generated = _decode(states, noise, jnp.asarray(s), mode)
      labels.append(judge.judge_predict(judge_model, np.asarray(generated)))
      conditions.append(s)
    labels, conditions = np.concatenate(labels), np.concatenate(conditions)
    row[f"{name} judge acc."] = (
        disentanglement.conditional_accuracy(labels, conditions)
        if spec.condition == "supervised"
        else disentanglement.cluster_accuracy(labels, conditions, spec.num_classes))
    codes, recs = zip(*(_encode_decode(states, images[i:i + BATCH], mode)
                        for i in range(0, len(images), BATCH)))
    row[f"{name} rec. MSE"] = float(np.mean((np.concatenate(recs) - images) ** 2))
    row[f"{name} code std"] = float(np.std(np.concatenate(codes)))
  return row


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  judge_model = judge.load_judge(os.path.join(FLAGS.workdir, "judge"), dataset="mnist")
  lines, columns = [], None
  for setting in study.SETTINGS:
    for prior in study.PRIORS:
      for seed in (0, 1, 2):
        workdir = os.path.join(FLAGS.workdir, f"{setting}_{prior}_seed{seed}")
        info = run_utils.read_json(os.path.join(workdir, run_utils.RUN_INFO))
        if not info or info.get("diverged") or "eval_seconds" not in info:
          continue
        # The study's defaults (run.py's flags); the checkpoint check names any mismatch.
        config = study.study_config(setting, prior, seed, steps=1000, width=8, batch_size=64,
                                    learning_rate=4e-4, num_samples=FLAGS.num_samples,
                                    judge_path=None, data_dir=None)
        images, _ = input_pipeline.load_split_arrays(config, "test", num=2000)
        row = diagnose(config, workdir, judge_model, images, FLAGS.num_samples)
        columns = columns or list(row)
        lines.append(f"| {setting} | {prior} | {seed} | "
                     + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
  header = ["| setting | prior | seed | " + " | ".join(columns or []) + " |",
            "|---|---|---|" + "---|" * len(columns or [])]
  text = "\n".join(["# Inference-mode vs. batch-statistics BatchNorm, per study run", "",
                    __doc__.split("\n\n", 2)[2].strip(), ""] + header + lines) + "\n"
  file_utils.write_atomically(FLAGS.out, lambda f: f.write(text.encode("utf-8")))
  print(text)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
