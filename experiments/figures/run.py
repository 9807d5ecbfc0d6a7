r"""Figures 3 and 4 of the paper from two finished runs: a learned-prior run and its
fixed-prior baseline (same dataset and setting).

  python -m experiments.figures.run --config=configs/mnist.py:supervised \
      --learned_workdir=runs/mnist_sup_learned --fixed_workdir=runs/mnist_sup_fixed \
      --out=experiments/figures/mnist_supervised [--config.model.width=...]

--config is the runs' training config (with the same overrides); its prior is set to
learned / fixed for the two workdirs. Writes to --out:

  figure3_learned.png, figure3_fixed.png    10-row sample grids: column j uses s = j (or
                                            10 more noise vectors for condition 'none')
  figure4_tsne.png                          t-SNE: (a) learned-prior encoder codes of test
                                            images, (b) code generator samples,
                                            (c) fixed-prior encoder codes
  reconstructions_learned.png, reconstructions_fixed.png
"""

import os

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

import lpaae_jax
from lpaae_jax.configs import default
from lpaae_jax import checkpointing
from lpaae_jax import evaluate
from lpaae_jax.evaluation import figures


def _define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "The runs' training config.",
                                  lock_config=True)
  flags.DEFINE_string("learned_workdir", None, "Workdir of the learned-prior run.")
  flags.DEFINE_string("fixed_workdir", None, "Workdir of the fixed-prior (baseline) run.")
  flags.DEFINE_string("out", None, "Output directory of the PNGs.")
  flags.DEFINE_integer("num_tsne_points", None,
                       "Test images (and CG samples) in the t-SNE (default "
                       "config.eval.num_tsne_points).")
  flags.mark_flags_as_required(["config", "learned_workdir", "fixed_workdir", "out"])


def with_prior(config: ml_collections.ConfigDict, prior: str) -> ml_collections.ConfigDict:
  config = config.copy_and_resolve_references()
  default.apply_variant(config, prior)
  return config


def make_figures(config: ml_collections.ConfigDict, learned_workdir: str, fixed_workdir: str,
                 out_dir: str, num_tsne_points=None) -> dict[str, str]:
  """Writes the PNGs (see the module docstring); returns {name: path}."""
  configs = {"learned": with_prior(config, "learned"), "fixed": with_prior(config, "fixed")}
  # Both checkpoints are restored before any figure is drawn: a wrong workdir fails first.
  restored = {prior: checkpointing.restore_latest(configs[prior], workdir)
              for prior, workdir in (("learned", learned_workdir), ("fixed", fixed_workdir))}
  os.makedirs(out_dir, exist_ok=True)
  images, labels = evaluate.real_eval_data(config)
  num_tsne = min(int(num_tsne_points or config.eval.num_tsne_points), len(images))
  keys = evaluate.eval_keys(config)
  batch_size = int(config.eval.batch_size)
  paths, codes = {}, {}
  for prior, (states, step) in restored.items():
    paths[f"figure3_{prior}"] = os.path.join(out_dir, f"figure3_{prior}.png")
    figures.figure3_grid(states, keys["grid"], int(config.num_grid_rows),
                         path=paths[f"figure3_{prior}"])
    paths[f"reconstructions_{prior}"] = os.path.join(out_dir, f"reconstructions_{prior}.png")
    figures.reconstruction_pairs(states, images[:int(config.num_reconstructions)],
                                 path=paths[f"reconstructions_{prior}"])
    codes[prior] = evaluate.batched_apply(lpaae_jax.encode, states, images[:num_tsne],
                                          batch_size)
  learned_states, learned_step = restored["learned"]
  prior_codes, prior_s = evaluate.prior_code_samples(learned_states, keys["tsne"], num_tsne)
  paths["figure4_tsne"] = os.path.join(out_dir, "figure4_tsne.png")
  figures.figure4_comparison(
      codes["learned"], labels[:num_tsne], prior_codes, prior_s, codes["fixed"],
      labels[:num_tsne], path=paths["figure4_tsne"], seed=int(config.seed),
      title=f"{config.dataset}, {learned_states.spec.condition}: learned prior (step "
            f"{learned_step}) vs. fixed prior (step {restored['fixed'][1]})")
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = flags.FLAGS
  paths = make_figures(FLAGS.config, FLAGS.learned_workdir, FLAGS.fixed_workdir, FLAGS.out,
                       FLAGS.num_tsne_points)
  for name, path in sorted(paths.items()):
    print(f"{name}: {path}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
