r"""The floors of the CIFAR-10 runs' measures: real training images measured exactly as a
run's samples are, FID against the test split's statistics and the artefact ratios against
the first 1000 test images.

  LPAAE_DATA_DIR=../shared/tfds \
  LPAAE_INCEPTION_WEIGHTS=../shared/inception/pt_inception-2015-12-05_fid_nofc.npz \
  python -m experiments.cifar10_fidelity.fid_floor [--counts=2000] [--draws=2] \
      [--workdir=runs/cifar10_fidelity] [--out=experiments/cifar10_fidelity/results/fid_floor.json]

For each count n, `--draws` disjoint sets of n training images (the first n, the next n,
...) are run through the FID Inception and compared with the test split's cached
statistics (`--workdir/fid_stats`, shared with run.py). A run's FID from n samples can
not be told from real data below this floor. Also writes the same sets' judge-feature FID
(with run.py's judge) and artefact ratios (`lpaae_jax.evaluation.artifacts`).
"""

import os

from absl import app
from absl import flags
import numpy as np

from lpaae_jax.configs import cifar10_cpu
from experiments import run_utils
from experiments.cifar10_fidelity import run as fidelity_run
from lpaae_jax import evaluate
from lpaae_jax import input_pipeline
from lpaae_jax.evaluation import artifacts, figures, judge, metrics

flags.DEFINE_list("counts", ["2000"], "Numbers of real images per FID.")
flags.DEFINE_integer("draws", 2, "Disjoint sets of training images per count.")
flags.DEFINE_string("workdir", "runs/cifar10_fidelity", "run.py's workdir (its fid_stats).")
flags.DEFINE_string("out", "experiments/cifar10_fidelity/results/fid_floor.json", "Output.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default $LPAAE_DATA_DIR).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config = cifar10_cpu.get_config()
  config.data_dir, config.download = FLAGS.data_dir, False
  config.eval.stats_cache_dir = os.path.join(FLAGS.workdir, "fid_stats")
  counts = [int(count) for count in FLAGS.counts]
  train_images, _ = input_pipeline.load_split_arrays(
      config, config.train_split, num=max(counts) * FLAGS.draws)
  test_images, _ = evaluate.real_eval_data(config)
  inception_fn, _, weights_path = evaluate.load_inception_fn(config)
  os.makedirs(config.eval.stats_cache_dir, exist_ok=True)
  cache = evaluate.reference_stats_path(config, config.eval.stats_cache_dir,
                                        len(test_images), weights_path)
  reference = metrics.cached_reference_stats(
      cache, lambda: evaluate.real_feature_stats(inception_fn, test_images))
  judge_path = fidelity_run.JUDGE_DIR
  judge_model = (judge.load_judge(judge_path, "cifar10")
                 if os.path.isfile(os.path.join(judge_path, judge.JSON_NAME)) else None)
  judge_reference = (metrics.feature_stats(judge.judge_outputs(judge_model, test_images)[
      "features"]) if judge_model else None)
  results = {"reference": f"{config.dataset} {config.eval_split}, {len(test_images)} images",
             "floors": []}
  for count in counts:
    for draw in range(FLAGS.draws):
      images = train_images[draw * count:(draw + 1) * count]
      pool3 = np.concatenate([inception_fn(figures.to_uint8(images[i:i + 100]))["pool3"]
                              for i in range(0, len(images), 100)])
      floor = {"count": count, "draw": draw,
               "fid": metrics.fid_from_stats(*metrics.feature_stats(pool3), *reference)}
      floor.update(artifacts.artifact_ratios(images[:artifacts.NUM_IMAGES],
                                             test_images[:artifacts.NUM_IMAGES]))
      if judge_model:
        features = judge.judge_outputs(judge_model, images)["features"]
        floor["judge_fid"] = metrics.fid_from_stats(*metrics.feature_stats(features),
                                                    *judge_reference)
      print(floor)
      results["floors"].append(floor)
      run_utils.write_json(FLAGS.out, results)


if __name__ == "__main__":
  app.run(main)
