r"""Fidelity ablations on real MNIST (issue: label-ordered grids, faithful reconstructions).

  LPAAE_DATA_DIR=../shared/tfds python -m experiments.fidelity.run \
      --workdir=runs/fidelity --results=experiments/fidelity/results \
      --variants=baseline,tie_both [--steps=1500] [--seeds=0]

Each variant is configs/mnist.py:<setting> at CPU scale (--width, --steps; nothing else
changed) plus the variant's overrides (`VARIANTS` below: what a variant changes, and
why it was tried). Every run is trained by the library's own loop and evaluated by
`lpaae_jax.evaluate.evaluate_states` with a judge classifier of real MNIST: conditional
accuracy (supervised), Hungarian cluster accuracy (unsupervised), judge accuracy and pixel
MSE of reconstructions of real test digits (against the mean-image baseline), judge-feature
FID, k-means accuracy/NMI of encoder codes. Runs live in --workdir/<variant>_seed<k>;
finished ones are read back, interrupted ones resume (experiments/run_utils.py), so the
same command finishes an interrupted ablation. results.md/results.json in --results hold
every variant run so far (the union over invocations), with each run's grid and
reconstructions copied beside them.
"""

import json
import os
import platform
import shutil
import time

from absl import app
from absl import flags
from absl import logging
import jax

from lpaae_jax.configs import mnist
from experiments import run_utils
from experiments.mnist_cpu_study import run as study
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import file_utils

# name -> (setting, overrides, why). Overrides are dotted config fields, relative to the
# current configs/default.py and configs/mnist.py (so a row reads "the defaults, except
# ..."). The ablations before configs/mnist.py's learning rate became 4e-4 pin the 2e-4
# they ran at, so that rerunning one reproduces its recorded row.
_LR_2E4 = {"optim.learning_rate": 2e-4}
# Likewise the unsupervised info weight before configs/mnist.py's became 3, and the fixed
# prior's code adversary before it became 0.05 in none and unsupervised.
_INFO_1 = {"loss.info_weight": 1.0}
_ADV_CODE_01 = {"loss.adv_code_weight": 0.1}
_LAYER_3 = {**_LR_2E4, "loss.feature_layers": (3,)}  # DESIGN's feature layer F alone
_BEFORE = {"loss.adv_code_weight": 1.0, **_LAYER_3}  # the loss weights before this work


def _discriminators_lr(scale: float) -> dict:
  """D_I (with its Q head) and D_C at `scale` times the generator side's learning rate."""
  return {"optim.learning_rate_scales.image_discriminator": scale,
          "optim.learning_rate_scales.code_discriminator": scale}


VARIANTS = {
    "sup_adv_code_1_layer_3": ("supervised", _BEFORE,
                               "the loss weights before this work, with the label tie and "
                               "batch statistics for fixed networks"),
    "sup_adv_code_1_layer_3_rec_10": ("supervised", {**_BEFORE, "loss.rec_weight_decoder": 10.0},
                                      "is the decoder's L_rec outweighed by its adversarial "
                                      "terms?"),
    "sup_layer_3": ("supervised", _LAYER_3,
                    "is the code adversary overpowering the encoder's L_rec (weight 0.1)?"),
    "sup_adv_code_0.01_layer_3": ("supervised", {**_LAYER_3, "loss.adv_code_weight": 0.01},
                                  "how far can the code adversary be weakened?"),
    "sup_layer_3_adv_rec_0.1": ("supervised", {**_LAYER_3, "loss.adv_rec_weight": 0.1},
                                "does the realism pressure on dec(enc(x)) cost identity?"),
    "sup_layer_3_pixel_1": ("supervised", {**_LAYER_3, "loss.pixel_rec_weight": 1.0},
                            "does a pixel term keep the digit's identity?"),
    "sup_defaults": ("supervised", _LR_2E4, "the defaults: all three D_I layers in L_rec"),
    "sup_fixed_bn_running": ("supervised", {**_LR_2E4, "model.fixed_batch_norm": "running"},
                             "fixed networks normalise with their running averages"),
    "sup_lr_4e-4": ("supervised", {"optim.learning_rate": 4e-4},
                    "does twice the learning rate learn the same in fewer iterations?"),
    "sup_fixed_prior": ("supervised,fixed", _LR_2E4, "the defaults, fixed prior (the baseline)"),
    "sup_fixed_prior_lr_4e-4": ("supervised,fixed", {"optim.learning_rate": 4e-4},
                                "the fixed prior at the current defaults"),
    "unsup_defaults": ("unsupervised", {**_LR_2E4, **_INFO_1}, "the defaults, unsupervised"),
    "unsup_adv_code_1": ("unsupervised", {**_LR_2E4, **_INFO_1, "loss.adv_code_weight": 1.0},
                         "does a tighter match of encoder codes to the CG's mixture cluster "
                         "the data (the AAE's clustering mechanism)?"),
    "unsup_info_3": ("unsupervised", {**_LR_2E4, "loss.info_weight": 3.0},
                     "does a stronger info term make s take the most salient factor, the "
                     "class?"),
    "unsup_lr_4e-4": ("unsupervised", {"optim.learning_rate": 4e-4, **_INFO_1},
                      "does the unsupervised s find the classes with more training?"),
    "unsup_lr_4e-4_info_2": ("unsupervised", {"optim.learning_rate": 4e-4,
                                              "loss.info_weight": 2.0},
                             "a stronger info term, with more training"),
    "unsup_lr_4e-4_info_3": ("unsupervised", {"optim.learning_rate": 4e-4,
                                              "loss.info_weight": 3.0},
                             "a stronger info term, with more training"),
    "unsup_lr_4e-4_info_5": ("unsupervised", {"optim.learning_rate": 4e-4,
                                              "loss.info_weight": 5.0},
                             "is a still stronger info term better?"),
    "unsup_fixed_prior": ("unsupervised,fixed", _ADV_CODE_01, "the fixed prior, unsupervised, "
                          "at the defaults before its code adversary became 0.05"),
    "unsup_fixed_prior_adv_code_0.05": ("unsupervised,fixed", {"loss.adv_code_weight": 0.05},
                                        "the fixed prior's reconstructions (judge accuracy "
                                        "0.87-0.90): is the code adversary costing them?"),
    "unsup_fixed_prior_pixel_1": ("unsupervised,fixed", {**_ADV_CODE_01,
                                                         "loss.pixel_rec_weight": 1.0},
                                  "the fixed prior's reconstructions: does a pixel term in "
                                  "L_rec keep the digit?"),
    "none_fixed_prior_adv_code_0.05": ("none,fixed", {"loss.adv_code_weight": 0.05},
                                       "the half-weight code adversary that lifted the "
                                       "unsupervised fixed prior's reconstructions, in none"),
    "unsup_adv_code_0.05": ("unsupervised", {"loss.adv_code_weight": 0.05},
                            "the half-weight code adversary, learned prior: does it cost the "
                            "clusters (0.3 raised them slightly)?"),
    "unsup_adv_code_0.3": ("unsupervised", {"loss.adv_code_weight": 0.3},
                           "a tighter match of encoder codes to the CG's mixture (between "
                           "0.1 and the 1.0 that cost reconstructions): do the codes cluster "
                           "by class?"),
    "unsup_lr_8e-4": ("unsupervised", {"optim.learning_rate": 8e-4},
                      "is the unsupervised s still finding the classes at 3000 iterations "
                      "(0.42 at 1500 and lr 2e-4, 0.73 at 3000 and 4e-4)?"),
    "unsup_noise_16": ("unsupervised", {"model.noise_dim": 16},
                       "does a smaller noise z leave more of the variation to s?"),
    "unsup_s_scale_8": ("unsupervised", {"model.code_generator_s_scale": 8.0},
                        "the one-hot s scaled to z's weight in the code generator's input "
                        "(at 1 its first layer starts out ignoring s): does s take the "
                        "class sooner?"),
    "unsup_s_scale_3": ("unsupervised", {"model.code_generator_s_scale": 3.0},
                        "between 1 and the 8 that collapsed each column to one image: s "
                        "the class, z still the style?"),
    "unsup_s_scale_5": ("unsupervised", {"model.code_generator_s_scale": 5.0},
                        "between the 3 that changed nothing and the 8 that collapsed "
                        "each column"),
    "unsup_discriminators_lr_0.5": ("unsupervised", _discriminators_lr(0.5),
                                    "the discriminators (D_I with Q, D_C) at half the "
                                    "generator side's rate (InfoGAN: D at 1/5 of G's): does "
                                    "the slower D_I/Q let s settle on the classes?"),
    "unsup_discriminators_lr_0.25": ("unsupervised", _discriminators_lr(0.25),
                                     "the discriminators at a quarter of the rate"),
    "unsup_discriminators_lr_2": ("unsupervised", _discriminators_lr(2.0),
                                  "the discriminators at twice the rate (TTUR's direction; "
                                  "slower ones lost clusters and FID)"),
    "unsup_code_generator_lr_2.5": ("unsupervised",
                                    {"optim.learning_rate_scales.code_generator": 2.5},
                                    "the code generator at InfoGAN's G rate (1e-3): does a "
                                    "faster CG move its clusters onto the classes?"),
    "unsup_noise_128": ("unsupervised", {"model.noise_dim": 128},
                        "a larger noise z, so a larger CG hidden layer (2 x noise_dim): s only "
                        "shifts the hidden units' biases, so more units give each s value "
                        "more room to gate a shape of its own (16 lowered the clusters)"),
    "unsup_s_scale_3_adv_code_0.3": ("unsupervised", {"model.code_generator_s_scale": 3.0,
                                                      "loss.adv_code_weight": 0.3},
                                     "the two mild single-seed gains together"),
    "unsup_s_scale_3_adv_code_0.2": ("unsupervised", {"model.code_generator_s_scale": 3.0,
                                                      "loss.adv_code_weight": 0.2},
                                     "the pair above with a lighter code adversary: its "
                                     "clusters without losing the reconstructions' digit "
                                     "(0.889 and 0.881 at 0.3 in seeds 1 and 2)?"),
    "unsup_s_scale_3_adv_code_0.3_pixel_1": ("unsupervised", {
        "model.code_generator_s_scale": 3.0, "loss.adv_code_weight": 0.3,
        "loss.pixel_rec_weight": 1.0},
        "the 0.3 pair's clusters with a pixel term in L_rec to hold the reconstructions' "
        "digit"),
    "unsup_s_scale_3_adv_code_0.4": ("unsupervised", {"model.code_generator_s_scale": 3.0,
                                                      "loss.adv_code_weight": 0.4},
                                     "the pair with a still tighter code adversary (0.2 -> "
                                     "0.3 raised the clusters in every seed)"),
    "unsup_s_scale_4_adv_code_0.3": ("unsupervised", {"model.code_generator_s_scale": 4.0,
                                                      "loss.adv_code_weight": 0.3},
                                     "the 0.3 pair with s weighted a little more (3 -> 4; "
                                     "5 alone made the columns less varied)"),
    "unsup_s_scale_3_adv_code_0.3_info_affine": ("unsupervised", {
        "model.code_generator_s_scale": 3.0, "loss.adv_code_weight": 0.3,
        "loss.info_augmentation": "affine"},
        "the 0.3 pair with Q reading s from a randomly rotated/scaled/shifted copy of each "
        "generated image: in failing seeds several categories share a look-alike group "
        "(4/7/9, 3/5/8), told apart by style while the noise picks the digit; a category "
        "that must survive rotation and rescaling cannot be a slant or size style"),
    "unsup_s_scale_3_adv_code_0.3_info_affine_0.5": ("unsupervised", {
        "model.code_generator_s_scale": 3.0, "loss.adv_code_weight": 0.3,
        "loss.info_augmentation": "affine", "loss.info_weight": 0.5},
        "the augmented info terms at weight 0.5 (configs/mnist.py's unsupervised 3 before): "
        "at 3 the columns hold one digit each far more often, but one category becomes a "
        "blob no digit looks like (seeds 0 and 1), which Q tells apart under any transform "
        "and the GAN term does not undo. Now configs/mnist.py's unsupervised learned prior"),
    "unsup_s_scale_3_adv_code_0.3_info_0.5": ("unsupervised", {
        "model.code_generator_s_scale": 3.0, "loss.adv_code_weight": 0.3,
        "loss.info_weight": 0.5},
        "the control for the augmented info terms at weight 0.5: the same weight without "
        "the augmentation"),
    "none_defaults": ("none", _LR_2E4, "the defaults, image generation"),
    "none_lr_4e-4": ("none", {"optim.learning_rate": 4e-4},
                     "image generation at the current defaults"),
    "none_fixed_prior": ("none,fixed", _ADV_CODE_01, "image generation, fixed prior, at the "
                         "defaults before its code adversary became 0.05"),
}

# Variants of options since retired (lpaae_jax/config_validation.py, RETIRED_FIELDS): their
# rows stay in results/, their code at the commit RETIRED_AT names. name -> (setting, why).
RETIRED_VARIANTS = {
    "sup_before": ("supervised", "the model before the fidelity work (but padded with -1): "
                   "no label tie, running averages in fixed networks"),
    "sup_tie_none": ("supervised", "without a label tie (Algorithm 1 as transcribed)"),
    "sup_tie_code_discriminator": ("supervised",
                                   "the label-conditioned code discriminator alone"),
    "sup_tie_q_real": ("supervised", "Q trained on real labels alone"),
    "unsup_real_cluster_1": ("unsupervised",
        "Q also clusters real images (RIM/CatGAN term, ours, beyond the paper): does s "
        "then name the real data's groups, the digits?"),
    "unsup_real_cluster_0.3": ("unsupervised",
        "the clustering term at a third of the weight"),
    "unsup_continuous_2": ("unsupervised",
        "InfoGAN's two continuous codes (ours, beyond the paper): with slant and width "
        "given codes of their own, does s stop splitting the 1s and merging 4/9, i.e. "
        "name the digits?"),
    "unsup_s_scale_8_decay_1500": ("unsupervised",
        "s at z's weight while the clusters form, decayed to 1 by iteration 1500: the "
        "cluster number of 8 without its collapsed columns?"),
    "unsup_s_scale_8_recover_z": ("unsupervised",
        "ClusterGAN's recipe: s at z's weight, and Q recovers all of z (weakly) so that z "
        "cannot be ignored: the cluster number of 8 without its collapsed columns?"),
    "unsup_s_scale_8_recover_z_0.1": ("unsupervised",
        "z recovered 5x as strongly (0.02 still collapsed the columns)"),
    "unsup_s_scale_8_recover_z_0.5": ("unsupervised",
        "z recovered 25x as strongly"),
    "unsup_code_generator_adv_0.1": ("unsupervised",
        "the CG pulled towards the encoder's codes by the fixed D_C (ours, beyond the "
        "paper; the encoder's own code adversary weight): with each s an equal share of "
        "the real codes, do the shares become the digits?"),
    "unsup_code_generator_adv_1": ("unsupervised",
        "the CG's pull towards the encoder's codes at 10x"),
    "unsup_s_scale_3_adv_code_0.3_info_from_1000": ("unsupervised",
        "the 0.3 pair with the info terms off for 1000 iterations, then ramped up over "
        "500: at full weight from the start Q tells the categories apart by iteration "
        "300, while the samples are rough shapes, and the noise decides the digit within "
        "look-alike groups (4/7/9, 3/5/8); do categories formed on digit-like images name "
        "the digits?"),
}
_LABEL_TIE_VARIANTS = ("sup_before", "sup_tie_none", "sup_tie_code_discriminator",
                       "sup_tie_q_real")
RETIRED_AT = {name: "2b0a9d1" if name in _LABEL_TIE_VARIANTS else "eee533d"
              for name in RETIRED_VARIANTS}

# configs/mnist.py's unsupervised learned prior took its current defaults (s scale 3, code
# adversary 0.3, info weight 0.5 on affine copies) after the variants above had run: every
# unsupervised variant pins the defaults before, so that rerunning one reproduces its recorded
# row (the three augmentation variants set each pinned field they change themselves).
_UNSUP_BEFORE_AUGMENTATION = {"model.code_generator_s_scale": 1.0,
                              "loss.adv_code_weight": 0.1, "loss.info_weight": 3.0,
                              "loss.info_augmentation": "none"}
VARIANTS = {name: (setting, {**_UNSUP_BEFORE_AUGMENTATION, **overrides}
                   if setting == "unsupervised" else overrides, why)
            for name, (setting, overrides, why) in VARIANTS.items()}

COLUMNS = (
    ("conditional_accuracy", "cond. acc.", 3),
    ("cluster_accuracy", "cluster acc.", 3),
    ("reconstruction_judge_accuracy", "rec. judge acc.", 3),
    ("reconstruction_mse", "rec. MSE", 3),
    ("mean_image_mse", "mean-image MSE", 3),
    ("judge_fid", "judge FID", 1),
    ("kmeans_accuracy", "k-means acc.", 3),
    ("kmeans_nmi", "k-means NMI", 3),
)


def _define_flags() -> None:
  flags.DEFINE_string("workdir", "runs/fidelity", "Runs and the judge.")
  flags.DEFINE_string("results", "experiments/fidelity/results", "results.md/json, PNGs.")
  flags.DEFINE_list("variants", None, f"Variants to run, from: {', '.join(VARIANTS)}.")
  flags.DEFINE_list("seeds", ["0"], "Seeds of every variant.")
  flags.DEFINE_integer("steps", 1500, "Training iterations per run.")
  flags.DEFINE_integer("width", 8, "model.width (paper: 64).")
  flags.DEFINE_integer("steps_per_jit", 1, "Iterations per compiled call (config.steps_per_jit: "
                       "the same training up to float reassociation; 4 ran about 20% faster "
                       "at width 8 on the 2-core CPU).")
  flags.DEFINE_integer("num_samples", 2000, "Generated samples per evaluation.")
  flags.DEFINE_integer("judge_steps", 2000, "Training steps of the judge classifier.")
  flags.DEFINE_string("judge", None, "An existing MNIST judge (default: trained once into "
                      "--workdir/judge).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default $LPAAE_DATA_DIR).")
  flags.mark_flags_as_required(["variants"])


def variant_config(name: str, seed: int, *, steps: int, width: int, num_samples: int,
                   judge_path: str, data_dir, steps_per_jit: int = 1):
  setting, overrides, _ = VARIANTS[name]
  config = mnist.get_config(setting)
  config.seed = seed
  config.data_dir = data_dir
  config.download = False
  config.model.width = width
  config.num_train_steps = steps
  config.steps_per_jit = steps_per_jit
  config.log_every_steps = min(100, steps)
  config.eval_every_steps = min(500, steps)
  config.checkpoint_every_steps = min(500, steps)
  config.eval.num_samples = num_samples
  config.eval.judge_path = judge_path
  config.eval.use_inception = False  # the judge's features stand in for Inception on a CPU
  config.update_from_flattened_dict(overrides)
  return config


def _row(run: dict) -> str:
  metrics = run["metrics"]
  values = [("diverged" if run.get("diverged") else "–") if metrics.get(key) is None
            else f"{metrics[key]:.{decimals}f}" for key, _, decimals in COLUMNS]
  changes = ", ".join(f"`{k}={v}`" for k, v in run["overrides"].items()
                      if k != "optim.learning_rate") or "defaults"
  return (f"| {run['variant']} | {run['setting']} | {run['seed']} | {run['learning_rate']:g} "
          f"| {changes} | " + " | ".join(values)
          + f" | {run.get('train_seconds', 0) / 60:.1f} |")


def write_report(results_dir: str, judge_info: dict) -> None:
  """results.md from every run recorded in results_dir/runs (all invocations so far)."""
  runs_dir = os.path.join(results_dir, "runs")
  runs = [run_utils.read_json(os.path.join(runs_dir, file))
          for file in sorted(os.listdir(runs_dir)) if file.endswith(".json")]
  header = ("| variant | setting | seed | lr | changes | "
            + " | ".join(h for _, h, _ in COLUMNS) + " | train min |")
  lines = ["# Fidelity ablations (real MNIST, 2-core CPU)", "",
           f"Judge test accuracy {judge_info['test_accuracy']:.4f}. Each row: "
           "configs/mnist.py:<setting> at the section's width and iterations and the row's "
           "learning rate (lr), plus its changes to the other defaults; metrics from "
           "lpaae_jax.evaluate.evaluate_states (test split).", ""]
  by_scale: dict[tuple[int, int], list[str]] = {}
  for run in filter(None, runs):
    by_scale.setdefault((run["width"], run["steps"]), []).append(_row(run))
  for (width, steps), rows in sorted(by_scale.items()):
    lines += [f"## width {width}, {steps} iterations", "", header,
              "|---|---|---|---|---|" + "---|" * (len(COLUMNS) + 1), *rows, ""]
  lines += ["## Variants", ""] + [f"* `{name}` ({setting}): {why}"
                                  for name, (setting, _, why) in VARIANTS.items()]
  lines += [f"* `{name}` ({setting}; retired, its code is at commit {RETIRED_AT[name]}): {why}"
            for name, (setting, why) in RETIRED_VARIANTS.items()]
  file_utils.write_atomically(os.path.join(results_dir, "results.md"),
                              lambda f: f.write(("\n".join(lines) + "\n").encode("utf-8")))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = flags.FLAGS
  retired = [name for name in FLAGS.variants if name in RETIRED_VARIANTS]
  if retired:
    raise app.UsageError(f"--variants: {retired[0]} is retired; its code is at commit "
                         f"{RETIRED_AT[retired[0]]}.")
  unknown = set(FLAGS.variants) - set(VARIANTS)
  if unknown:
    raise app.UsageError(f"--variants: unknown {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(VARIANTS)}.")
  seeds = [int(seed) for seed in FLAGS.seeds]
  if FLAGS.judge:
    judge_path, judge_info = FLAGS.judge, None  # read after training: it may still be training
  else:
    judge_path, judge_info = study.ensure_judge(os.path.join(FLAGS.workdir, "judge"),
                                                FLAGS.judge_steps, FLAGS.data_dir)
  settings = dict(steps=FLAGS.steps, width=FLAGS.width, num_samples=FLAGS.num_samples,
                  judge_path=judge_path, data_dir=FLAGS.data_dir,
                  steps_per_jit=FLAGS.steps_per_jit)
  configs = {(name, seed): variant_config(name, seed, **settings)
             for name in FLAGS.variants for seed in seeds}
  for config in configs.values():  # every bad variant fails before any training
    config_validation.validate_config(config)

  runs_dir = os.path.join(FLAGS.results, "runs")
  os.makedirs(runs_dir, exist_ok=True)
  hardware = f"{platform.machine()} CPU, {os.cpu_count()} cores, jax {jax.__version__}"
  for (name, seed), config in configs.items():
    run_name = f"{name}_seed{seed}_w{FLAGS.width}_{FLAGS.steps}steps"
    workdir = os.path.join(FLAGS.workdir, run_name)
    start = time.time()
    run = run_utils.run_once(config, workdir)
    logging.info("%s done in %.1f min.", run_name, (time.time() - start) / 60)
    for figure in ("samples_grid", "reconstructions", "tsne"):
      source = os.path.join(workdir, "eval", evaluate.FIGURE_FILES[figure])
      if os.path.isfile(source):
        shutil.copyfile(source, os.path.join(FLAGS.results, f"{run_name}_{figure}.png"))
    setting, overrides, why = VARIANTS[name]
    run = run_utils.relative_paths(run)  # the judge as the command names it
    # One file per run: parallel invocations never write the same file.
    run_utils.write_json(os.path.join(runs_dir, run_name + ".json"), {
        "variant": name, "seed": seed, "width": FLAGS.width, "steps": FLAGS.steps,
        "setting": setting, "overrides": overrides, "why": why, "hardware": hardware,
        "learning_rate": config.optim.learning_rate, "steps_per_jit": FLAGS.steps_per_jit,
        **run})
    if judge_info is None:
      with open(os.path.join(judge_path, "judge.json"), encoding="utf-8") as judge_file:
        judge_info = json.load(judge_file)
    write_report(FLAGS.results, judge_info)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
