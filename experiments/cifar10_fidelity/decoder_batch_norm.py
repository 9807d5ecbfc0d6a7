r"""Evaluation BatchNorm of finished runs: the decoder's statistics pooled over encoder and
prior codes (the default) against per input (`eval.decoder_batch_norm="per_input"`), on the
reconstructions of the whole test split and on 1000 samples' artefact ratios.

  LPAAE_DATA_DIR=../shared/tfds python -m experiments.cifar10_fidelity.decoder_batch_norm \
      runs/cifar10_fidelity/<run> [...] \
      [--out=experiments/cifar10_fidelity/results/decoder_batch_norm.md]
"""

import os

from absl import app
from absl import flags
import numpy as np

import lpaae_jax
from experiments.cifar10_fidelity import run as fidelity_run
from lpaae_jax import checkpointing
from lpaae_jax import evaluate
from lpaae_jax import provenance
from lpaae_jax.evaluation import artifacts, judge

flags.DEFINE_string("out", "experiments/cifar10_fidelity/results/decoder_batch_norm.md",
                    "Markdown table.")
FLAGS = flags.FLAGS


def measure(workdir: str, judge_model) -> list[str]:
  """One table row per decoder_batch_norm value for the run in `workdir`."""
  config = provenance.load_config(workdir)
  states, step = checkpointing.restore_latest(config, workdir)
  images, labels = evaluate.real_eval_data(config)
  batches = evaluate.recalibration_batches(config)
  rows = []
  for value in ("pooled", "per_input"):
    config.eval.decoder_batch_norm = value
    sampling, reconstructing = evaluate.inference_states(config, states, batches)
    reconstructions = np.concatenate([np.asarray(lpaae_jax.reconstruct(
        reconstructing, images[i:i + 500])) for i in range(0, len(images), 500)])
    samples = np.asarray(lpaae_jax.sample(sampling, evaluate.eval_keys(config)["samples"],
                                          artifacts.NUM_IMAGES))
    real = images[:artifacts.NUM_IMAGES]
    accuracy = np.mean(judge.judge_predict(judge_model, reconstructions) == labels)
    sample_ratios = artifacts.artifact_ratios(samples, real)
    rec_ratios = artifacts.artifact_ratios(reconstructions[:len(real)], real)
    rows.append(f"| {os.path.basename(workdir.rstrip('/'))} | {step} | {value} | "
                f"{np.mean((reconstructions - images)**2):.4f} | {accuracy:.3f} | "
                f"{rec_ratios['colour_grain_ratio']:.2f} | "
                f"{sample_ratios['colour_grain_ratio']:.2f} | "
                f"{sample_ratios['lattice_ratio_p2']:.2f} |")
    print(rows[-1])
  return rows


def main(argv):
  judge_model = judge.load_judge(fidelity_run.JUDGE_DIR, "cifar10")
  rows = [row for workdir in argv[1:] for row in measure(workdir, judge_model)]
  header = ("| run | step | decoder BN | rec. MSE (10k test) | rec. judge acc. | rec. grain | "
            "sample grain | sample lattice p2 |\n|---|---|---|---|---|---|---|---|\n")
  with open(FLAGS.out, "w", encoding="utf-8") as out:
    out.write(header + "\n".join(rows) + "\n")


if __name__ == "__main__":
  app.run(main)
