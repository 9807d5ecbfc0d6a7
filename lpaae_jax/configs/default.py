"""Default hyperparameters of lpaae_jax (DESIGN §4); dataset configs override a few fields.

Not meant to be run directly: use configs/mnist.py, configs/cifar10.py or configs/svhn.py.
Every dataset config accepts a variant string after a colon, a comma-separated list of a
setting (`none`, `supervised`, `unsupervised`) and a prior (`learned`, `fixed`), e.g.
`--config=configs/cifar10.py:supervised,fixed`.
"""

import ml_collections

from lpaae_jax.config_validation import CONDITIONS, PRIORS, ConfigError


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # --- Data (tfds). data_dir=None falls back to $LPAAE_DATA_DIR, then $TFDS_DATA_DIR, then
  # tfds's default (~/tensorflow_datasets).
  config.dataset = "cifar10"
  config.data_dir = ml_collections.config_dict.placeholder(str)
  config.download = True
  config.train_split = "train"
  config.eval_split = "test"

  # --- Networks (DESIGN §1-3; "ours" marks what the paper leaves open).
  config.model = ml_collections.ConfigDict()
  config.model.image_size = 32          # every network works on 32x32 (MNIST is padded 28->32)
  config.model.channels = 3
  config.model.width = 64               # w of DESIGN §1 (paper: 64)
  config.model.code_dim = 64            # paper
  config.model.noise_dim = 64           # ours
  config.model.num_classes = 10
  config.model.condition = "none"       # none | supervised | unsupervised
  config.model.prior = "learned"        # learned (code generator) | fixed (N(0, I) baseline)
  config.model.disc_hidden = 1000       # D_I's dense layer
  # ours (SPEC §1): the decoder's 2x upsampling, "transposed" (the paper's 4x4 stride-2
  # transposed conv) or "resize_conv" (nearest upsampling, then a 3x3 conv); its blocks'
  # normalisation, "none" (the paper's table) or "batch".
  config.model.upsampling = "transposed"
  config.model.decoder_norm = "none"
  config.model.code_disc_hidden = (1000, 500, 200)
  config.model.bn_momentum = 0.9        # ours: running stats track fast for inference-mode use
  # ours (DESIGN §3): a network a phase keeps fixed normalises with the batch's own statistics
  # ("batch") or with its running averages ("running"); its averages are never updated.
  config.model.fixed_batch_norm = "batch"
  # ours: the code generator's input is [z; this * one-hot s] (the fixed prior's code stays
  # [z'; one-hot s]). At 1 the noise outweighs s in the first layer at initialisation;
  # larger values trade the samples' variety for clusters (DESIGN.md, experiments/fidelity).
  config.model.code_generator_s_scale = 1.0

  # --- Losses. Every weight is ours (the paper gives only lambda's name).
  config.loss = ml_collections.ConfigDict()
  config.loss.rec_weight_decoder = 1.0  # lambda of Algorithm 1: L_rec in the decoder's loss
  # encoder: fool D_C. At 1 the code adversary drowns L_rec (reconstructions lose the digit),
  # at 0.01 D_C wins outright and the codes leave the prior (experiments/fidelity).
  config.loss.adv_code_weight = 0.1
  config.loss.adv_noise_weight = 1.0    # CG and decoder: D_I(dec(z_c)) towards real
  config.loss.adv_rec_weight = 1.0      # decoder: D_I(dec(enc(x))) towards real
  config.loss.info_weight = 1.0
  # ours, beyond the paper: "affine" -> both info terms read s from a randomly rotated
  # (+-15 deg), scaled (+-10%) and shifted (+-2 px) copy of each generated image, resampled
  # on a black (-1) background (lpaae_jax/augment.py), so that a category cannot be a slant
  # or size style; "none": the paper's term on x_noise itself.
  # configs/mnist.py's unsupervised learned prior uses "affine" (measured there); other
  # datasets and settings are unmeasured.
  config.loss.info_augmentation = "none"
  config.loss.pixel_rec_weight = 0.0
  # D_I conv layers whose features L_rec compares: 1 (16x16), 2 (8x8), 3 (4x4, DESIGN's F).
  # All three: the 4x4 layer alone constrains little detail (experiments/fidelity).
  config.loss.feature_layers = (1, 2, 3)
  config.loss.gan_loss = "non_saturating"  # non_saturating | minimax

  # --- Optimiser: Adam per network (DESIGN §4).
  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  # ours: each network's learning rate is learning_rate times its scale here (InfoGAN
  # trained G at 5x D's rate). Default: one rate for all, as measured in experiments/fidelity.
  config.optim.learning_rate_scales = ml_collections.ConfigDict(dict(
      encoder=1.0, decoder=1.0, image_discriminator=1.0, code_discriminator=1.0,
      code_generator=1.0))

  # --- Run: scale, backend, intervals.
  config.seed = 0
  config.batch_size = 64                # global batch, split over devices
  config.num_train_steps = 100_000
  config.compute_dtype = "float32"      # float32 | bfloat16 (activations only)
  # The one switch for backend-specific formulations of the same functions (same parameters,
  # so checkpoints load either way; lpaae_jax/backend.py): "cpu" = lpaae_jax/cpu/'s
  # convolutions, compiler options and malloc settings; "xla" = plain Flax layers;
  # "auto" = "cpu" on the CPU backend, else "xla".
  config.fast_paths = "auto"            # auto | cpu | xla
  # Iterations per compiled call (jax.lax.scan over that many stacked batches): on a TPU a
  # small model's step can take less time than the host needs to dispatch it, so the host
  # cost is paid once per call instead of once per step. Equal to step-by-step training up
  # to float reassociation. Keep the log/eval/checkpoint intervals multiples of it; the
  # loop runs single steps up to any boundary that is not.
  config.steps_per_jit = 1

  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.checkpoint_every_steps = 5_000
  config.max_to_keep = 3
  config.on_nonfinite = "stop"          # stop: raise naming phase/step/term; skip: drop the step
  config.reinit = False                 # True: set unusable checkpoints aside and start over
  config.profile_num_steps = 0          # >0: a jax.profiler trace of that many steps, in workdir
  config.num_grid_rows = 10             # noise vectors (rows) of the sample grid
  config.num_reconstructions = 8
  # Eval images reconstructed (and as many samples drawn) for the summaries' pixel MSE and
  # artefact ratios: the 1000 of the reported ratios (lpaae_jax.evaluation.artifacts).
  config.num_summary_images = 1000

  # --- Evaluation (lpaae_jax.evaluate).
  config.eval = ml_collections.ConfigDict()
  # Inception weights (.npz of pytorch-fid keys). None: $LPAAE_INCEPTION_WEIGHTS, then the
  # cache directory ~/.cache/lpaae_jax.
  config.eval.inception_weights = ml_collections.config_dict.placeholder(str)
  config.eval.num_samples = 50_000
  config.eval.num_splits = 10
  config.eval.batch_size = 250
  config.eval.judge_path = ml_collections.config_dict.placeholder(str)  # judge metrics if set
  config.eval.num_real_samples = ml_collections.config_dict.placeholder(int)  # None: whole split
  config.eval.num_tsne_points = 1000
  # ours: evaluation (and the training's image summaries) first replaces the running
  # BatchNorm averages, which trail the parameters, by the final networks' statistics over
  # this many training batches ("precise BN"); 0 keeps the running averages.
  config.eval.recalibrate_bn_batches = 50
  # ours: the decoder's recalibrated statistics, "pooled" over its two training inputs
  # (encoder codes and prior codes) for samples and reconstructions alike, or "per_input":
  # over prior codes for samples and over encoder codes for reconstructions, as training
  # normalises each batch by its own (lpaae_jax.evaluate.inference_states).
  config.eval.decoder_batch_norm = "pooled"
  # False skips FID/IS (InceptionV3 at 299x299 is slow on a CPU); with a judge the
  # judge-feature FID still compares samples with the real split.
  config.eval.use_inception = True
  # Training writes cheap summaries every eval_every_steps (sample grid, reconstructions,
  # pixel MSE); True also runs the full evaluation (lpaae_jax.evaluate) after the last step.
  config.eval.full_eval_at_end = False
  # FID reference stats of the real split; None: the evaluation's output directory.
  config.eval.stats_cache_dir = ml_collections.config_dict.placeholder(str)

  if variant:
    apply_variant(config, variant)
  return config


def apply_variant(config: ml_collections.ConfigDict, variant: str) -> None:
  """Applies 'supervised,fixed'-style variant strings (setting and/or prior, any order)."""
  for token in filter(None, (t.strip() for t in variant.split(","))):
    if token in CONDITIONS:
      config.model.condition = token
    elif token in PRIORS:
      config.model.prior = token
    else:
      raise ConfigError(
          f"Unknown config variant {token!r}: use a setting {CONDITIONS} and/or a prior "
          f"{PRIORS}, comma-separated, e.g. 'configs/cifar10.py:supervised,fixed'.")
