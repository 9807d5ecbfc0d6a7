r"""Two yardsticks at the AAE's budget, built from the same networks: a plain GAN and the
autoencoder alone. Their FID and reconstruction MSE are what the AAE must reach.

  LPAAE_DATA_DIR=../shared/tfds \
  LPAAE_INCEPTION_WEIGHTS=../shared/inception/pt_inception-2015-12-05_fid_nofc.npz \
  python -m experiments.cifar10_fidelity.yardsticks --variant=paper_table \
      --yardsticks=gan,autoencoder [--steps=3000] [--seed=0] [--width=16]

`--variant` (one of run.py's VARIANTS) gives the networks: its decoder, image
discriminator and encoder, built by the library's ModelSpec, with the library's Adam.

* gan: the decoder generates from z ~ N(0, I_code_dim), D_I (its D head) discriminates;
  each iteration updates D_I on one real and one generated batch, then the decoder against
  the updated D_I (the loss of config.loss.gan_loss). Evaluated on samples: Inception FID,
  judge FID, artefact ratios.
* autoencoder: encoder + decoder on the pixel MSE alone. Evaluated on reconstructions of
  the test split: MSE, the judge's accuracy, artefact ratios.

Both run --steps iterations at batch 64 and resume from their checkpoints; results go to
--results/yardsticks/yardstick_<name>_<variant>_seed<k>_w<width>_<steps>steps.json (the
figures in --results), and run.py's results.md lists them beside the AAE runs.
"""

import functools
import os
import platform
import shutil
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

import lpaae_jax
from experiments import run_utils
from experiments.cifar10_fidelity import run as fidelity_run
from lpaae_jax import checkpointing
from lpaae_jax import config_validation
from lpaae_jax import evaluate
from lpaae_jax import input_pipeline
from lpaae_jax import losses
from lpaae_jax import models
from lpaae_jax import train_steps
from lpaae_jax.forward import apply_train
from lpaae_jax.states import States

YARDSTICKS = ("gan", "autoencoder")


def gan_step(states: States, batch, key, *, gan_loss: str):
  """One plain-GAN iteration: D_I on real vs dec(z), then the decoder against the updated
  D_I. Only the decoder and the image discriminator change."""
  images = batch["image"].astype(jnp.float32)
  decoder, disc = states.decoder, states.image_discriminator
  noise = jax.random.normal(key, (images.shape[0], states.spec.code_dim), jnp.float32)
  fakes, fakes_vjp, decoder_stats = jax.vjp(
      lambda params: apply_train(decoder, params, decoder.batch_stats, noise),
      decoder.params, has_aux=True)

  def disc_loss(params):
    stats = disc.batch_stats
    (real_logits, _, _), stats = apply_train(disc, params, stats, images)
    (fake_logits, _, _), stats = apply_train(disc, params, stats, fakes)
    return losses.discriminator_loss(real_logits, fake_logits), (stats, real_logits,
                                                                 fake_logits)

  (d_loss, (disc_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(
      disc_loss, has_aux=True)(disc.params)
  disc = disc.apply_gradients(grads=d_grads, batch_stats=disc_stats)

  def generator_loss(fakes):
    (logits, _, _), _ = apply_train(disc, disc.params, disc.batch_stats, fakes)
    return losses.generator_loss(logits, gan_loss)

  g_loss, image_grads = jax.value_and_grad(generator_loss)(fakes)
  (decoder_grads,) = fakes_vjp(image_grads)
  new_states = states.replace(
      decoder=decoder.apply_gradients(grads=decoder_grads, batch_stats=decoder_stats),
      image_discriminator=disc)
  return new_states, {"disc_loss": d_loss, "generator_loss": g_loss,
                      "p_real": losses.mean_probability(real_logits),
                      "p_fake": losses.mean_probability(fake_logits)}


def autoencoder_step(states: States, batch, key):
  """One autoencoder iteration: encoder and decoder on the pixel MSE of dec(enc(x))."""
  del key
  images = batch["image"].astype(jnp.float32)
  encoder, decoder = states.encoder, states.decoder

  def loss_fn(params):
    codes, encoder_stats = apply_train(encoder, params["encoder"], encoder.batch_stats,
                                       images)
    reconstructions, decoder_stats = apply_train(decoder, params["decoder"],
                                                 decoder.batch_stats, codes)
    return losses.pixel_reconstruction_loss(images, reconstructions), (encoder_stats,
                                                                       decoder_stats)

  (loss, (encoder_stats, decoder_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      {"encoder": encoder.params, "decoder": decoder.params})
  return states.replace(
      encoder=encoder.apply_gradients(grads=grads["encoder"], batch_stats=encoder_stats),
      decoder=decoder.apply_gradients(grads=grads["decoder"], batch_stats=decoder_stats),
  ), {"pixel_loss": loss}


def yardstick_config(variant: str, seed: int, **settings):
  """run.py's config of `variant`, as the fixed prior without a condition (so that the
  library's evaluation samples dec(z), z ~ N(0, I)), its decoder's BatchNorm statistics
  recalibrated per input (the GAN's over N(0, I) codes, the autoencoder's over encoder
  codes: what each decodes in training)."""
  config = fidelity_run.variant_config(variant, seed, **settings)
  config.model.condition, config.model.prior = "none", "fixed"
  config.eval.decoder_batch_norm = "per_input"
  return config


def train_yardstick(name: str, config, workdir: str):
  """Trains (resuming from the workdir's checkpoint) and returns the final states."""
  step_fn = (functools.partial(gan_step, gan_loss=config.loss.gan_loss) if name == "gan"
             else autoencoder_step)
  spec = models.ModelSpec.from_config(config)
  step_fn = jax.jit(step_fn, donate_argnums=0, compiler_options=dict(
      train_steps.step_compiler_options(spec, config.batch_size)) or None)
  manager = checkpointing.create_manager(workdir, config)
  try:
    restored = checkpointing.restore_newest_usable(manager, config)
    if restored is None:
      states, start = lpaae_jax.create_states(
          config, jax.random.split(jax.random.key(config.seed), 3)[0]), 0
    else:
      states, start = restored
    train_key = jax.random.split(jax.random.key(config.seed), 3)[1]
    batches = input_pipeline.create_train_iterator(config, start_step=start,
                                                   end_step=config.num_train_steps)
    begin = time.time()
    for step, batch in enumerate(batches, start=start + 1):
      states, metrics = step_fn(states, batch, jax.random.fold_in(train_key, step))
      if step % config.log_every_steps == 0 or step == config.num_train_steps:
        logging.info("%s step %d: %s (%.2f s/iteration)", name, step,
                     {k: round(float(v), 4) for k, v in metrics.items()},
                     (time.time() - begin) / (step - start))
        if not all(np.isfinite(float(v)) for v in metrics.values()):
          raise FloatingPointError(f"{name} diverged at step {step}: {metrics}")
      if step % config.checkpoint_every_steps == 0 or step == config.num_train_steps:
        checkpointing.save(manager, step, states, config)
    checkpointing.wait_until_saved(manager)
  finally:
    manager.close()
  return states


# The metrics of each yardstick (the library's evaluation computes more).
METRICS = {
    "gan": ("fid", "judge_fid", "sample_lattice_ratio_p2", "sample_lattice_ratio_p4",
            "sample_lattice_ratio_p8", "sample_colour_grain_ratio"),
    "autoencoder": ("reconstruction_mse", "mean_image_mse", "reconstruction_judge_accuracy",
                    "reconstruction_lattice_ratio_p2", "reconstruction_lattice_ratio_p4",
                    "reconstruction_lattice_ratio_p8", "reconstruction_colour_grain_ratio"),
}


def run_yardstick(name: str, config, workdir: str, reevaluate: bool = False) -> dict:
  """Trains and evaluates one yardstick, or reads back its finished evaluation (evaluates
  it again with `reevaluate`, or when it lacks the FID asked for)."""
  metrics_path = os.path.join(workdir, "eval", evaluate.METRICS_FILE)
  info_path = os.path.join(workdir, run_utils.RUN_INFO)
  finished = run_utils.read_json(metrics_path)
  wants_fid = name == "gan" and config.eval.use_inception
  if (finished and finished.get("step") == config.num_train_steps and not reevaluate
      and ("fid" in finished or not wants_fid)):
    return {"metrics": finished, **(run_utils.read_json(info_path) or {})}
  start = time.time()
  states = train_yardstick(name, config, workdir)
  info = run_utils.read_json(info_path) or {}
  info["train_seconds"] = info.get("train_seconds", 0.0) + time.time() - start  # resumed
  start = time.time()
  if name == "autoencoder":  # its samples (decoded N(0, I) codes) mean nothing
    config.eval.use_inception = False
  results = evaluate.evaluate_run(config, states, workdir, config.num_train_steps)
  info["eval_seconds"] = time.time() - start
  run_utils.write_json(info_path, info)
  return {"metrics": results, **info}


def _define_flags() -> None:
  flags.DEFINE_string("workdir", "runs/cifar10_fidelity", "Runs (and run.py's FID "
                      "statistics).")
  flags.DEFINE_string("results", "experiments/cifar10_fidelity/results", "Where the JSONs go.")
  flags.DEFINE_list("yardsticks", list(YARDSTICKS), f"From {YARDSTICKS}.")
  flags.DEFINE_string("variant", "paper_table", "run.py's variant whose networks to use.")
  flags.DEFINE_integer("seed", 0, "Seed.")
  flags.DEFINE_integer("steps", 3000, "Training iterations.")
  flags.DEFINE_integer("width", 16, "model.width.")
  flags.DEFINE_integer("num_samples", 2000, "Generated samples (the GAN's evaluation).")
  flags.DEFINE_bool("inception", True, "The GAN's Inception FID (else the judge's alone).")
  flags.DEFINE_bool("reevaluate", False, "Evaluate finished yardsticks again.")
  flags.DEFINE_string("judge", fidelity_run.JUDGE_DIR, "A CIFAR-10 judge (default: run.py's).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default $LPAAE_DATA_DIR).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = flags.FLAGS
  if set(FLAGS.yardsticks) - set(YARDSTICKS) or FLAGS.variant not in fidelity_run.VARIANTS:
    raise app.UsageError(f"--yardsticks from {YARDSTICKS}; --variant from "
                         f"{', '.join(fidelity_run.VARIANTS)}.")
  judge_path = os.path.relpath(FLAGS.judge)
  settings = dict(steps=FLAGS.steps, width=FLAGS.width, num_samples=FLAGS.num_samples,
                  inception=FLAGS.inception, data_dir=FLAGS.data_dir, judge_path=judge_path,
                  stats_cache_dir=os.path.join(FLAGS.workdir, "fid_stats"), steps_per_jit=1)
  config = yardstick_config(FLAGS.variant, FLAGS.seed, **settings)
  config_validation.validate_config(config)
  fidelity_run.ensure_judge(judge_path, FLAGS.data_dir)
  os.makedirs(settings["stats_cache_dir"], exist_ok=True)
  os.makedirs(FLAGS.results, exist_ok=True)
  for name in FLAGS.yardsticks:
    run_name = (f"yardstick_{name}_{FLAGS.variant}_seed{FLAGS.seed}_w{FLAGS.width}_"
                f"{FLAGS.steps}steps")
    workdir = os.path.join(FLAGS.workdir, run_name)
    run = run_yardstick(name, config.copy_and_resolve_references(), workdir,
                        FLAGS.reevaluate)
    figure = "samples_grid" if name == "gan" else "reconstructions"
    source = os.path.join(workdir, "eval", evaluate.FIGURE_FILES[figure])
    if os.path.isfile(source):
      shutil.copyfile(source, os.path.join(FLAGS.results, f"{run_name}_{figure}.png"))
    run_utils.write_json(os.path.join(FLAGS.results, "yardsticks", run_name + ".json"), {
        "yardstick": name, "variant": FLAGS.variant, "seed": FLAGS.seed,
        "width": FLAGS.width, "steps": FLAGS.steps,
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "train_seconds": run.get("train_seconds"), "eval_seconds": run.get("eval_seconds"),
        "metrics": {key: run["metrics"].get(key) for key in METRICS[name]}})
    judge_json = os.path.join(judge_path, "judge.json")
    fidelity_run.write_report(FLAGS.results, run_utils.read_json(judge_json))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
