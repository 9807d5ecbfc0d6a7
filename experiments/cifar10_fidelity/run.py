r"""CIFAR-10 fidelity ablations (issue: samples without the decoder's lattice, reconstructions
that keep the image, a supervised grid in class order).

  LPAAE_DATA_DIR=../shared/tfds \
  LPAAE_INCEPTION_WEIGHTS=../shared/inception/pt_inception-2015-12-05_fid_nofc.npz \
  python -m experiments.cifar10_fidelity.run --variants=paper_table,resize_conv \
      [--steps=3000] [--seeds=0] [--width=16] [--num_samples=2000] [--inception=true]

Each variant is configs/cifar10_cpu.py:<setting> at --width and --steps with the variant's
overrides (`VARIANTS`: what it changes and why), trained by the library's loop on the whole
50k training split and evaluated by `lpaae_jax.evaluate.evaluate_states` against the 10k
test split: Inception FID (--num_samples samples; the test split's statistics computed once
into --workdir/fid_stats), judge-feature FID, the artefact ratios of 1000 samples and of
1000 reconstructions (`lpaae_jax.evaluation.artifacts`), reconstruction MSE and the
judge's accuracy on reconstructions, the supervised conditional / unsupervised cluster
accuracy. The judge is the committed one (`JUDGE_DIR`; `JUDGE`: GroupNorm, two convs per
stage, flips and shifts, 6000 steps), trained again where it is missing. Runs live in
--workdir/<variant>_seed<k>_w<width>_<steps>steps; a finished one is read back, an
interrupted one resumes. --results holds one JSON per run and results.md, the union over
invocations, with each run's grid, reconstructions and t-SNE beside it.
"""

import json
import os
import platform
import shutil
import time

from absl import app
from absl import flags
from absl import logging
from flax import traverse_util
import jax

from lpaae_jax.configs import cifar10_cpu
from experiments import run_utils
from lpaae_jax import checkpointing
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import file_utils
from lpaae_jax.evaluation import inception, judge

# The CIFAR-10 judge, committed in JUDGE_DIR (test accuracy 0.8086; README.md): the same
# recipe trains it again where that directory is missing.
JUDGE_DIR = os.path.join(os.path.dirname(__file__), "judge")
JUDGE = dict(num_steps=6000, batch_size=128, learning_rate=1e-3, widths=(32, 64, 128),
             convs_per_stage=2, group_norm=True, augment=True, cosine_decay=True)

# The model of the committed paper-table runs (experiments/paper_table/results_cpu): the
# fields this work added, at the paper's table.
PAPER_TABLE = {"model.upsampling": "transposed", "model.decoder_norm": "none",
               "loss.pixel_rec_weight": 0.0, "loss.rec_weight_decoder": 1.0}


def cifar10_defaults() -> dict:
  """configs/cifar10.py's values of PAPER_TABLE's fields where they differ: the model it
  trains, as overrides of the paper table's."""
  flat = traverse_util.flatten_dict(cifar10_cpu.get_config().to_dict(), sep=".")
  return {field: flat[field] for field in PAPER_TABLE if flat[field] != PAPER_TABLE[field]}


# name -> (setting, overrides, why). Overrides are dotted config fields relative to
# PAPER_TABLE (so a row reads "the paper table's model, except ...").
_RESIZE = {"model.upsampling": "resize_conv"}

VARIANTS = {
    "paper_table": ("none", {}, "the model of the committed paper-table runs, on 50k images"),
    "resize_conv": ("none", _RESIZE, "nearest upsampling + 3x3 conv instead of the 4x4 "
                    "stride-2 transposed conv, the known source of a checkerboard (Odena et "
                    "al. 2016): is it the lattice?"),
    "resize_conv_pixel_1": ("none", {**_RESIZE, "loss.pixel_rec_weight": 1.0},
                            "a pixel MSE in L_rec beside the D_I features: colour and "
                            "layout the batch-normalised features do not see"),
    "resize_conv_pixel_10": ("none", {**_RESIZE, "loss.pixel_rec_weight": 10.0},
                             "the pixel term at 10: at 1 (about 0.2 against the features' "
                             "1.0) the reconstructions' pixel MSE stayed near the mean "
                             "image's"),
    "resize_conv_pixel_10_lambda_3": (
        "none", {**_RESIZE, "loss.pixel_rec_weight": 10.0, "loss.rec_weight_decoder": 3.0},
        "L_rec at 3x in the decoder's loss (lambda): with one Adam for both phases the "
        "decoder's adversarial gradients (norm ~8 each for x_noise and x_rec) outweighed "
        "its L_rec gradient (~2.5 with the pixel term at 1) and set its step size"),
    "resize_conv_pixel_10_lambda_10": (
        "none", {**_RESIZE, "loss.pixel_rec_weight": 10.0, "loss.rec_weight_decoder": 10.0},
        "lambda 10: at 3 both the samples and the reconstructions improved on lambda 1"),
    "resize_conv_pixel_30": ("none", {**_RESIZE, "loss.pixel_rec_weight": 30.0},
                             "the pixel term at 30"),
    "resize_conv_pixel_10_adv_rec_0.3": (
        "none", {**_RESIZE, "loss.pixel_rec_weight": 10.0, "loss.adv_rec_weight": 0.3},
        "less realism pressure on dec(enc(x)), which pulls the decoder away from the "
        "reconstruction"),
    "resize_conv_decoder_bn": ("none", {**_RESIZE, "model.decoder_norm": "batch"},
                               "BatchNorm inside the decoder's blocks"),
    "resize_conv_pixel_30_lambda_3": (
        "none", {**_RESIZE, "loss.pixel_rec_weight": 30.0, "loss.rec_weight_decoder": 3.0},
        "the two best single changes together: pixel 30 and lambda 3"),
    "resize_conv_pixel_10_lambda_3_decoder_bn": (
        "none", {**_RESIZE, "loss.pixel_rec_weight": 10.0, "loss.rec_weight_decoder": 3.0,
                 "model.decoder_norm": "batch"},
        "BatchNorm inside the decoder's blocks (as in DCGAN's generator) on the best "
        "balance so far"),
    # configs/cifar10.py's model in each setting.
    **{f"cifar10_{setting.replace(',', '_')}": (
        setting, cifar10_defaults(), f"configs/cifar10.py's model, {setting}")
       for setting in ("none", "supervised", "unsupervised", "supervised,fixed",
                       "unsupervised,fixed")},
    "resize_conv_pixel_30_lambda_3_decoder_bn": (
        "none", {**_RESIZE, "loss.pixel_rec_weight": 30.0, "loss.rec_weight_decoder": 3.0,
                 "model.decoder_norm": "batch"},
        "decoder BatchNorm (colour grain 3.85 -> 1.93 at pixel 10) on the lowest-FID "
        "balance (pixel 30, lambda 3)"),
}

# Against the yardsticks (README): the AAE's reconstructions are behind the autoencoder alone
# (0.092 vs 0.057) and its samples behind the plain GAN (judge FID 113.5 vs 100.2).
VARIANTS.update({
    "cifar10_none_pixel_100": (
        "none", {**cifar10_defaults(), "loss.pixel_rec_weight": 100.0},
        "the pixel term at 100: 10 -> 30 improved both reconstructions and samples"),
    "cifar10_supervised_s_scale_3": (
        "supervised", {**cifar10_defaults(), "model.code_generator_s_scale": 3.0},
        "s at 3 in the code generator's input (the noise outweighs a one-hot s at 1): "
        "the judge read sample(s=j) as j only 0.46 of the time"),
    "cifar10_supervised_lr_4e-4": (
        "supervised", {**cifar10_defaults(), "optim.learning_rate": 4e-4},
        "twice the learning rate (MNIST's: a CPU budget went twice as far there); at 10k "
        "iterations the supervised model improved on every judge metric"),
    "cifar10_none_lr_4e-4": (
        "none", {**cifar10_defaults(), "optim.learning_rate": 4e-4},
        "twice the learning rate, image generation (its GAN yardstick at the same rate)"),
    "cifar10_none_adv_code_0.3": (
        "none", {**cifar10_defaults(), "loss.adv_code_weight": 0.3},
        "more code-adversary pressure on the encoder: with the pixel term at 30 D_C tells "
        "the encoder's codes from the prior's (p_code_fake 0.03-0.12), so the decoder "
        "learns on codes the prior does not draw"),
    "cifar10_none_adv_code_0.03": (
        "none", {**cifar10_defaults(), "loss.adv_code_weight": 0.03},
        "less code-adversary pressure: at 0.3 the reconstructions got worse (0.092 -> "
        "0.103); the learned prior follows the encoder's codes through D_C either way"),
    "cifar10_supervised_info_3": (
        "supervised", {**cifar10_defaults(), "loss.info_weight": 3.0},
        "the info term at 3 (MNIST's unsupervised value): Q's pull on the decoder to show "
        "s's class, the lever s at 3 was for the code generator, without its grain"),
})

# Variants of options since retired (lpaae_jax/config_validation.py, RETIRED_FIELDS): their
# rows stay in results/, their code is at commit RETIRED_AT. name -> (setting, why).
RETIRED_AT = "2b0a9d1"
RETIRED_VARIANTS = {
    "resize_conv_disc_spectral": ("none", "D_I with spectral norm instead of BatchNorm"),
    "cifar10_none_flip": ("none", "horizontal flips of the training images (twice the data "
                          "a GAN sees; CIFAR-10's classes are mirror-symmetric)"),
}

COLUMNS = (
    ("fid", "FID", 1),
    ("judge_fid", "judge FID", 1),
    ("sample_lattice_ratio_p2", "lattice p2", 2),
    ("sample_lattice_ratio_p4", "p4", 2),
    ("sample_lattice_ratio_p8", "p8", 2),
    ("sample_colour_grain_ratio", "grain", 2),
    ("reconstruction_mse", "rec. MSE", 4),
    ("reconstruction_judge_accuracy", "rec. judge acc.", 3),
    ("reconstruction_lattice_ratio_p2", "rec. lattice p2", 2),
    ("reconstruction_colour_grain_ratio", "rec. grain", 2),
    ("conditional_accuracy", "cond. acc.", 3),
    ("cluster_accuracy", "cluster acc.", 3),
)


def _define_flags() -> None:
  flags.DEFINE_string("workdir", "runs/cifar10_fidelity", "Runs and FID statistics.")
  flags.DEFINE_string("results", "experiments/cifar10_fidelity/results",
                      "results.md, one JSON per run, PNGs.")
  flags.DEFINE_list("variants", None, f"Variants to run, from: {', '.join(VARIANTS)}.")
  flags.DEFINE_list("seeds", ["0"], "Seeds of every variant.")
  flags.DEFINE_integer("steps", 3000, "Training iterations per run.")
  flags.DEFINE_integer("width", 16, "model.width (paper: 64).")
  flags.DEFINE_integer("eval_every_steps", 500, "Evaluation (about 50 s) and checkpoint "
                       "interval.")
  flags.DEFINE_integer("steps_per_jit", 4, "Iterations per compiled call (the same training "
                       "up to float reassociation).")
  flags.DEFINE_integer("num_samples", 2000, "Generated samples per evaluation.")
  flags.DEFINE_bool("inception", True, "Inception FID (about 5 min per 2000 samples on the "
                    "2-core CPU, and once 25 min for the test split's statistics).")
  flags.DEFINE_bool("reevaluate", False, "Evaluate finished runs again (the evaluation's "
                    "code or settings changed; training is not redone).")
  flags.DEFINE_string("judge", JUDGE_DIR, "A CIFAR-10 judge (the committed one by default; "
                      "trained again with JUDGE's recipe when it is missing).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default $LPAAE_DATA_DIR).")
  flags.mark_flags_as_required(["variants"])


def ensure_judge(judge_dir: str, data_dir) -> str:
  """Trains the CIFAR-10 judge (JUDGE) once into judge_dir; later calls load it."""
  if not os.path.isfile(os.path.join(judge_dir, judge.JSON_NAME)):
    config = cifar10_cpu.get_config()
    config.data_dir = data_dir
    config.download = False
    logging.info("Training the CIFAR-10 judge into %s.", judge_dir)
    params, info = judge.train_judge(config, **JUDGE)
    os.makedirs(judge_dir, exist_ok=True)
    judge.save_judge(judge_dir, params, info)
  return judge_dir


def variant_config(name: str, seed: int, *, steps: int, width: int, num_samples: int,
                   inception: bool, judge_path: str, stats_cache_dir: str, data_dir,
                   steps_per_jit: int = 4, eval_every_steps: int = 500):
  setting, overrides, _ = VARIANTS[name]
  config = cifar10_cpu.get_config(setting)
  config.seed = seed
  config.data_dir = data_dir
  config.download = False
  config.model.width = width
  config.num_train_steps = steps
  config.steps_per_jit = steps_per_jit
  config.log_every_steps = min(100, steps)
  config.eval_every_steps = min(eval_every_steps, steps)
  config.checkpoint_every_steps = min(eval_every_steps, steps)
  config.eval.num_samples = num_samples
  config.eval.judge_path = judge_path
  config.eval.use_inception = inception
  config.eval.stats_cache_dir = stats_cache_dir
  config.update_from_flattened_dict({**PAPER_TABLE, **overrides})
  return config


def reevaluate(config, workdir: str, run: dict) -> dict:
  """Evaluates a finished run's final checkpoint again (with this config's evaluation)."""
  start = time.time()
  states, step = checkpointing.restore_latest(config, workdir)
  metrics = evaluate.evaluate_run(config, states, workdir, step)
  info = {key: value for key, value in run.items() if key != "metrics"}
  info["eval_seconds"] = time.time() - start
  run_utils.write_json(os.path.join(workdir, run_utils.RUN_INFO), info)
  return {"metrics": metrics, **info}


def _row(run: dict) -> str:
  metrics = run["metrics"]
  values = [("diverged" if run.get("diverged") else "–") if metrics.get(key) is None
            else f"{metrics[key]:.{decimals}f}" for key, _, decimals in COLUMNS]
  changes = ", ".join(f"`{k}={v}`" for k, v in run["overrides"].items()) or "–"
  return (f"| {run['variant']} | {run['setting']} | {run['seed']} | {changes} | "
          + " | ".join(values) + f" | {run.get('train_seconds', 0) / 60:.1f} |")


def write_report(results_dir: str, judge_info: dict) -> None:
  """results.md from every run recorded in results_dir/runs (all invocations so far)."""
  runs_dir = os.path.join(results_dir, "runs")
  runs = [run_utils.read_json(os.path.join(runs_dir, file))
          for file in sorted(os.listdir(runs_dir)) if file.endswith(".json")
          ] if os.path.isdir(runs_dir) else []
  header = ("| variant | setting | seed | changes | " + " | ".join(h for _, h, _ in COLUMNS)
            + " | train min |")
  lines = ["# CIFAR-10 fidelity ablations (real CIFAR-10, 50k training images, 2-core CPU)",
           "", f"Judge test accuracy {judge_info['test_accuracy']:.4f}. Each row: "
           "configs/cifar10_cpu.py:<setting> at the section's width and iterations with the "
           "paper table's model (run.py's PAPER_TABLE) and the row's changes; metrics from "
           "lpaae_jax.evaluate.evaluate_states against the 10k test split; artefact ratios "
           "from 1000 images against 1000 real ones (~1 = real).", ""]
  by_scale: dict[tuple[int, int], list[str]] = {}
  for run in filter(None, runs):
    by_scale.setdefault((run["width"], run["steps"]), []).append(_row(run))
  for (width, steps), rows in sorted(by_scale.items()):
    lines += [f"## width {width}, {steps} iterations", "", header,
              "|---|---|---|---|" + "---|" * (len(COLUMNS) + 1), *rows, ""]
  yardsticks_dir = os.path.join(results_dir, "yardsticks")
  yardsticks = [run_utils.read_json(os.path.join(yardsticks_dir, file))
                for file in sorted(os.listdir(yardsticks_dir)) if file.endswith(".json")
                ] if os.path.isdir(yardsticks_dir) else []
  if yardsticks:
    lines += ["## Yardsticks (yardsticks.py: the same networks as a plain GAN, and as an "
              "autoencoder on the pixel MSE)", "",
              "| yardstick | networks of | seed | width | iterations | metrics | train min |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {y['yardstick']} | {y['variant']} | {y['seed']} | {y['width']} | "
              f"{y['steps']} | " + ", ".join(
                  f"{key} {value:.4g}" for key, value in y["metrics"].items()
                  if value is not None) + f" | {(y.get('train_seconds') or 0) / 60:.1f} |"
              for y in filter(None, yardsticks)]
    lines.append("")
  lines += ["## Variants", ""] + [f"* `{name}` ({setting}): {why}"
                                  for name, (setting, _, why) in VARIANTS.items()]
  lines += [f"* `{name}` ({setting}; retired, its code is at commit {RETIRED_AT}): {why}"
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
                         f"{RETIRED_AT}.")
  unknown = set(FLAGS.variants) - set(VARIANTS)
  if unknown:
    raise app.UsageError(f"--variants: unknown {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(VARIANTS)}.")
  seeds = [int(seed) for seed in FLAGS.seeds]
  settings = dict(steps=FLAGS.steps, width=FLAGS.width, num_samples=FLAGS.num_samples,
                  inception=FLAGS.inception, data_dir=FLAGS.data_dir,
                  judge_path=os.path.relpath(FLAGS.judge),
                  stats_cache_dir=os.path.join(FLAGS.workdir, "fid_stats"),
                  steps_per_jit=FLAGS.steps_per_jit, eval_every_steps=FLAGS.eval_every_steps)
  configs = {(name, seed): variant_config(name, seed, **settings)
             for name in FLAGS.variants for seed in seeds}
  for config in configs.values():  # every bad variant fails before any training
    config_validation.validate_config(config)
  if FLAGS.inception:  # missing weights fail now, not after the first run's training
    inception.resolve_inception_weights(config.eval.inception_weights)
  ensure_judge(settings["judge_path"], FLAGS.data_dir)
  with open(os.path.join(settings["judge_path"], judge.JSON_NAME), encoding="utf-8") as f:
    judge_info = json.load(f)

  runs_dir = os.path.join(FLAGS.results, "runs")
  os.makedirs(runs_dir, exist_ok=True)
  os.makedirs(settings["stats_cache_dir"], exist_ok=True)
  hardware = f"{platform.machine()} CPU, {os.cpu_count()} cores, jax {jax.__version__}"
  for (name, seed), config in configs.items():
    run_name = f"{name}_seed{seed}_w{FLAGS.width}_{FLAGS.steps}steps"
    workdir = os.path.join(FLAGS.workdir, run_name)
    start = time.time()
    finished_before = run_utils.finished_run(config, workdir) is not None
    run = run_utils.run_once(config, workdir)
    if run["metrics"] and ((FLAGS.inception and "fid" not in run["metrics"])
                           or (FLAGS.reevaluate and finished_before)):
      run = reevaluate(config, workdir, run)  # finished earlier with another evaluation
    logging.info("%s done in %.1f min.", run_name, (time.time() - start) / 60)
    for figure in ("samples_grid", "reconstructions", "tsne"):
      source = os.path.join(workdir, "eval", evaluate.FIGURE_FILES[figure])
      if os.path.isfile(source):
        shutil.copyfile(source, os.path.join(FLAGS.results, f"{run_name}_{figure}.png"))
    setting, overrides, why = VARIANTS[name]
    run_utils.write_json(os.path.join(runs_dir, run_name + ".json"), {
        "variant": name, "seed": seed, "width": FLAGS.width, "steps": FLAGS.steps,
        "setting": setting, "overrides": overrides, "why": why, "hardware": hardware,
        "steps_per_jit": FLAGS.steps_per_jit, **run_utils.relative_paths(run)})
    write_report(FLAGS.results, judge_info)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
