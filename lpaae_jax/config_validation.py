"""Config validation in one place, run before anything compiles or touches a workdir.

Every error is one line naming the field, the bad value and what is allowed.
"""

import math
from typing import Any, NamedTuple

import ml_collections

from lpaae_jax import errors

CONDITIONS = ("none", "supervised", "unsupervised")
PRIORS = ("learned", "fixed")
GAN_LOSSES = ("non_saturating", "minimax")
COMPUTE_DTYPES = ("float32", "bfloat16")
FAST_PATHS = ("auto", "cpu", "xla")
ON_NONFINITE = ("stop", "skip")
CHANNELS = (1, 3)
FIXED_BATCH_NORMS = ("batch", "running")
INFO_AUGMENTATIONS = ("none", "affine")  # lpaae_jax/augment.py
FEATURE_LAYERS = (1, 2, 3)
UPSAMPLINGS = ("transposed", "resize_conv")  # models.ResBlock
DECODER_NORMS = ("none", "batch")
DECODER_BATCH_NORMS = ("pooled", "per_input")  # evaluate.inference_states
NETWORKS = ("encoder", "decoder", "image_discriminator", "code_discriminator",
            "code_generator")


class ConfigError(errors.LpaaeError, ValueError):
  """A config field holds a value the library cannot run with."""


class RetiredField(NamedTuple):
  neutral: Any      # the value under which a run trained what this code trains; ANY: unread
  last_commit: str  # the last commit whose code has the field


ANY = "<any value: no code read it>"
# Fields removed from the configs. A stored config holding the neutral value loads and its
# results record stands (experiments/run_utils.py); any other value is an error naming the
# commit to check out for it.
RETIRED_FIELDS = {
    "shuffle_buffer_size": RetiredField(ANY, "6a136f6"),
    # Options measured worse on MNIST and off by default (experiments/fidelity/README.md).
    "model.num_continuous_codes": RetiredField(0, "eee533d"),
    "loss.continuous_info_weight": RetiredField(ANY, "eee533d"),  # read only with codes
    "model.code_generator_s_scale_decay_steps": RetiredField(0, "eee533d"),
    "loss.info_start_step": RetiredField(0, "eee533d"),
    "loss.info_ramp_steps": RetiredField(0, "eee533d"),
    "loss.real_cluster_weight": RetiredField(0.0, "eee533d"),
    "loss.code_generator_adv_weight": RetiredField(0.0, "eee533d"),
    # Options neither the MNIST nor the CIFAR-10 defaults use (experiments/fidelity,
    # experiments/cifar10_fidelity): the supervised tie is always both ties; D_I is the table's.
    "model.label_tie": RetiredField("both", "2b0a9d1"),
    "model.image_disc_norm": RetiredField("batch", "2b0a9d1"),
    "model.image_disc_width": RetiredField(None, "2b0a9d1"),
    "random_flip": RetiredField(False, "53b2694"),  # no better on CIFAR-10
}


def retired_without_effect(field: str, value) -> bool:
  """Whether `field` is retired and `value` trains what this code trains."""
  retired = RETIRED_FIELDS.get(field)
  return retired is not None and retired.neutral in (ANY, value)


def _check_retired_fields(config) -> None:
  for field, retired in RETIRED_FIELDS.items():
    node = config
    for part in field.split("."):
      node = node.get(part) if hasattr(node, "get") else None
    if node is not None and not retired_without_effect(field, node):
      raise ConfigError(
          f"config.{field}={node!r} sets a retired field: this code trains as with "
          f"{retired.neutral!r}. Remove the field, or check out commit {retired.last_commit} "
          "to run this config.")


def _require(ok: bool, field: str, value, allowed: str) -> None:
  if not ok:
    raise ConfigError(f"config.{field}={value!r} is invalid: {allowed}.")


def _positive_int(config, field: str) -> None:
  value = _get(config, field)
  _require(isinstance(value, int) and not isinstance(value, bool) and value > 0, field,
           value, "must be a positive integer")


def _non_negative(config, field: str) -> None:
  value = _get(config, field)
  _require(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, field,
           value, "must be a finite number >= 0")


def _get(config, field: str):
  node = config
  for part in field.split("."):
    if part not in node:
      raise ConfigError(f"config.{field} is missing: start from configs/default.py, which "
                        "defines every field.")
    node = node[part]
  return node


def validate_model_config(config: ml_collections.ConfigDict) -> None:
  """Checks what the networks and train steps need (model, loss, optim, dtype)."""
  _check_retired_fields(config)
  model = config.model
  _require(model.condition in CONDITIONS, "model.condition", model.condition,
           f"allowed: {', '.join(CONDITIONS)}")
  _require(model.prior in PRIORS, "model.prior", model.prior, f"allowed: {', '.join(PRIORS)}")
  _require(model.fixed_batch_norm in FIXED_BATCH_NORMS, "model.fixed_batch_norm",
           model.fixed_batch_norm, f"allowed: {', '.join(FIXED_BATCH_NORMS)}")
  # Configs from before these fields mean the paper's table (models.ModelSpec.from_config).
  for field, allowed in (("upsampling", UPSAMPLINGS), ("decoder_norm", DECODER_NORMS)):
    value = model.get(field, allowed[0])
    _require(value in allowed, "model." + field, value, f"allowed: {', '.join(allowed)}")
  layers = config.loss.feature_layers
  _require(isinstance(layers, (tuple, list)) and len(layers) > 0 and len(set(layers)) == len(layers)
           and all(layer in FEATURE_LAYERS and not isinstance(layer, bool) for layer in layers),
           "loss.feature_layers", layers, "must be a non-empty tuple of distinct D_I conv "
           "layers from 1, 2, 3 (3 is DESIGN's 4x4 feature layer F)")
  _require(config.loss.gan_loss in GAN_LOSSES, "loss.gan_loss", config.loss.gan_loss,
           f"allowed: {', '.join(GAN_LOSSES)}")
  _require(config.compute_dtype in COMPUTE_DTYPES, "compute_dtype", config.compute_dtype,
           f"allowed: {', '.join(COMPUTE_DTYPES)}")
  _require(config.get("fast_paths", "auto") in FAST_PATHS, "fast_paths",
           config.get("fast_paths"), f"allowed: {', '.join(FAST_PATHS)}")
  for field in ("model.width", "model.code_dim", "model.noise_dim", "model.num_classes",
                "model.image_size", "model.disc_hidden", "batch_size"):
    _positive_int(config, field)
  _require(model.channels in CHANNELS, "model.channels", model.channels,
           "allowed: 1 (gray) or 3 (colour)")
  size = model.image_size
  _require(size >= 8 and size & (size - 1) == 0, "model.image_size", size,
           "must be a power of two >= 8 (the networks halve it down to 4x4)")
  _require(isinstance(model.bn_momentum, float) and 0 <= model.bn_momentum < 1,
           "model.bn_momentum", model.bn_momentum, "must be a float in [0, 1)")
  hidden = tuple(model.code_disc_hidden)
  _require(len(hidden) > 0 and all(isinstance(h, int) and h > 0 for h in hidden),
           "model.code_disc_hidden", hidden, "must be a non-empty tuple of positive integers")
  if model.prior == "fixed" and model.condition != "none":
    _require(model.code_dim > model.num_classes, "model.code_dim", model.code_dim,
             f"with prior='fixed' and condition='{model.condition}' the code is [z'; one-hot s], "
             f"so code_dim must exceed model.num_classes={model.num_classes}")
  scale = model.get("code_generator_s_scale", 1.0)
  _require(isinstance(scale, (int, float)) and not isinstance(scale, bool)
           and math.isfinite(scale) and scale > 0, "model.code_generator_s_scale", scale,
           "must be a finite number > 0")
  _require(config.loss.info_augmentation in INFO_AUGMENTATIONS, "loss.info_augmentation",
           config.loss.info_augmentation, f"allowed: {', '.join(INFO_AUGMENTATIONS)}")
  _require(config.on_nonfinite in ON_NONFINITE, "on_nonfinite", config.on_nonfinite,
           f"allowed: {', '.join(ON_NONFINITE)}")
  for field in ("loss.rec_weight_decoder", "loss.adv_code_weight", "loss.adv_noise_weight",
                "loss.adv_rec_weight", "loss.info_weight", "loss.pixel_rec_weight"):
    _non_negative(config, field)
  lr = config.optim.learning_rate
  _require(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
           "optim.learning_rate", lr, "must be a finite number > 0")
  for network in NETWORKS:
    field = f"optim.learning_rate_scales.{network}"
    scale = _get(config, field)
    _require(isinstance(scale, (int, float)) and not isinstance(scale, bool)
             and math.isfinite(scale) and scale > 0, field, scale, "must be a finite number > 0")
  for field in ("optim.b1", "optim.b2"):
    value = _get(config, field)
    _require(isinstance(value, (int, float)) and 0 <= value < 1, field, value,
             "must lie in [0, 1)")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks every field a training run uses; raises ConfigError on the first bad one."""
  validate_model_config(config)
  for field in ("num_train_steps", "log_every_steps", "eval_every_steps",
                "checkpoint_every_steps", "max_to_keep", "num_grid_rows",
                "num_reconstructions", "num_summary_images", "eval.num_samples",
                "eval.num_splits", "eval.batch_size"):
    _positive_int(config, field)
  value = _get(config, "steps_per_jit")
  _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
           "steps_per_jit", value, "must be an integer >= 1 (iterations fused into one "
           "compiled call; 1 runs step by step)")
  value = _get(config, "profile_num_steps")
  _require(isinstance(value, int) and value >= 0, "profile_num_steps", value,
           "must be an integer >= 0 (0 disables profiling)")
  value = _get(config, "reinit")
  _require(isinstance(value, bool), "reinit", value, "must be True or False")
  value = config.eval.get("decoder_batch_norm", "pooled")  # the field's default before it
  _require(value in DECODER_BATCH_NORMS, "eval.decoder_batch_norm", value,
           f"allowed: {', '.join(DECODER_BATCH_NORMS)}")
  value = _get(config, "seed")
  _require(isinstance(value, int) and not isinstance(value, bool), "seed", value,
           "must be an integer")
