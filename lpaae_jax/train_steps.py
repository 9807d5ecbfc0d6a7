"""The two phases of Algorithm 1 (DESIGN §3) as pure functions `(states, batch, key) ->
(states, metrics)`, and `make_train_steps`, the one place that jits them.

Each phase differentiates only the networks it updates and returns the others untouched
(same arrays: params, optimizer state and batch statistics). Networks a phase keeps fixed
normalise with their running BatchNorm averages or with the batch's own statistics
(`model.fixed_batch_norm`); their running averages are never updated. Within a phase the
discriminator is updated first and the generator-side networks then train against the
updated discriminator, in the order of Algorithm 1; each shared forward pass (enc(x);
dec(z_c) and dec(enc(x))) is computed once and its vjp carries the generator gradient back.

Supervised label tie (DESIGN §2): D_C judges [z_c; one-hot y] against [enc(x); one-hot y]
(s = y, the batch's labels), so each class's codes must match the prior of that class, and
the Q head also learns y from the real images, so the info term makes dec(z_c(s)) look like
class s to a classifier of real data.
"""

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec

from lpaae_jax import augment, losses
from lpaae_jax.forward import (apply_fixed, apply_train, code_discriminator_inputs,
                               prior_input_vector, sample_prior_inputs)
from lpaae_jax.models import ModelSpec
from lpaae_jax.states import States, TrainState

Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class StepHyperparams:
  """The steps' hyperparameters (config.loss and model.fixed_batch_norm), bound into the
  jitted steps as a frozen, hashable value (no ConfigDict in traced code)."""
  rec_weight_decoder: float = 1.0  # lambda of Algorithm 1: L_rec in the decoder's loss
  adv_code_weight: float = 1.0     # the encoder's adversarial term against D_C
  adv_noise_weight: float = 1.0    # CG and decoder: D_I(dec(z_c)) towards "real"
  adv_rec_weight: float = 1.0      # decoder: D_I(dec(enc(x))) towards "real"
  info_weight: float = 1.0         # InfoGAN term (and Q on real images with the Q tie)
  # Ours, beyond the paper: "affine" -> Q reads the codes from a randomly rotated, scaled and
  # shifted copy of x_noise, in both info terms (lpaae_jax/augment.py).
  info_augmentation: str = "none"
  pixel_rec_weight: float = 0.0    # pixel MSE added to L_rec
  feature_layers: tuple[int, ...] = (3,)  # D_I conv layers (1-3) compared by L_rec
  gan_loss: str = "non_saturating"
  # True: a fixed network normalises each batch by its own statistics; False: by its
  # running averages. Either way its running averages are not updated.
  fixed_batch_stats: bool = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "StepHyperparams":
    loss = config.loss
    return cls(rec_weight_decoder=float(loss.rec_weight_decoder),
               adv_code_weight=float(loss.adv_code_weight),
               adv_noise_weight=float(loss.adv_noise_weight),
               adv_rec_weight=float(loss.adv_rec_weight),
               info_weight=float(loss.info_weight),
               info_augmentation=str(loss.info_augmentation),
               pixel_rec_weight=float(loss.pixel_rec_weight),
               feature_layers=tuple(int(layer) for layer in loss.feature_layers),
               gan_loss=loss.gan_loss,
               fixed_batch_stats=config.model.fixed_batch_norm == "batch")


# ----------------------------------------------------------------------------- helpers


def check_batch(spec: ModelSpec, batch: dict[str, Any]) -> None:
  """Raises ValueError when a batch does not fit the model (runs at trace time)."""
  if "image" not in batch:
    raise ValueError(f"batch has keys {sorted(batch)}; it needs 'image' (B, H, W, C) float32 "
                     "in [-1, 1] and 'label' (B,) int32.")
  image = batch["image"]
  if image.ndim != 4 or tuple(image.shape[1:]) != spec.image_shape:
    raise ValueError(f"batch['image'] has shape {tuple(image.shape)}; the config "
                     f"(model.image_size={spec.image_size}, model.channels={spec.channels}) "
                     f"needs (B, {spec.image_size}, {spec.image_size}, {spec.channels}).")
  if not jnp.issubdtype(image.dtype, jnp.floating):
    raise ValueError(f"batch['image'] has dtype {image.dtype}; it must be float32 in [-1, 1].")
  if spec.condition == "supervised":
    label = batch.get("label")
    if label is None:
      raise ValueError("model.condition='supervised' needs batch['label'] (B,) int32.")
    if tuple(label.shape) != (image.shape[0],) or not jnp.issubdtype(label.dtype, jnp.integer):
      raise ValueError(f"batch['label'] has shape {tuple(label.shape)} and dtype "
                       f"{label.dtype}; it must be int32 of shape ({image.shape[0]},).")


def layers_feature_loss(hp: StepHyperparams, real_features, rec_features):
  """L_rec's learned-metric part: the feature MSE summed over `hp.feature_layers`."""
  return sum(losses.feature_reconstruction_loss(real_features[layer - 1],
                                                rec_features[layer - 1])
             for layer in hp.feature_layers)


def all_finite(tree) -> jax.Array:
  """Whether every floating-point leaf of `tree` is finite (a scalar bool array)."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
                            if jnp.issubdtype(x.dtype, jnp.floating)]))


# ----------------------------------------------------------------------------- AAE phase


class _CodeDiscAux(NamedTuple):
  real_logits: jax.Array  # D_C on prior samples z_c
  fake_logits: jax.Array  # D_C on encoder codes enc(x)


def _code_disc_loss(params, code_disc: TrainState, real_inputs, fake_inputs):
  """D_C as a discriminator: prior samples are real, encoder codes are fake."""
  real_logits = code_disc.apply_fn({"params": params}, real_inputs)
  fake_logits = code_disc.apply_fn({"params": params}, fake_inputs)
  return losses.discriminator_loss(real_logits, fake_logits), _CodeDiscAux(real_logits,
                                                                            fake_logits)


class _AutoencoderAux(NamedTuple):
  decoder_stats: Any
  feature_loss: jax.Array
  pixel_loss: jax.Array
  rec_loss: jax.Array
  adv_loss: jax.Array


def _autoencoder_loss(codes, decoder_params, *, states: States, images, real_features,
                      labels, hp: StepHyperparams):
  """The encoder's loss L_rec + adv_code_weight * (fool D_C), as a function of the codes
  enc(x) and the decoder's parameters (the decoder's own loss is lambda * L_rec)."""
  decoder = states.decoder
  reconstructions, decoder_stats = apply_train(decoder, decoder_params, decoder.batch_stats,
                                               codes)
  _, _, rec_features = apply_fixed(states.image_discriminator, reconstructions,
                                   batch_stats=hp.fixed_batch_stats)
  feature_loss = layers_feature_loss(hp, real_features, rec_features)
  pixel_loss = losses.pixel_reconstruction_loss(images, reconstructions)
  rec_loss = feature_loss + hp.pixel_rec_weight * pixel_loss
  code_disc = states.code_discriminator
  adv_loss = losses.generator_loss(
      code_disc.apply_fn({"params": code_disc.params},
                         code_discriminator_inputs(states.spec, codes, labels)), hp.gan_loss)
  encoder_loss = rec_loss + hp.adv_code_weight * adv_loss
  return encoder_loss, _AutoencoderAux(decoder_stats, feature_loss, pixel_loss, rec_loss,
                                       adv_loss)


def aae_phase_step(states: States, batch: dict[str, Any], key, *,
                   hp: StepHyperparams) -> tuple[States, Metrics]:
  """AAE phase: updates D_C, the encoder and the decoder; CG and D_I stay fixed.

  Args:
    states: every network's TrainState (donated by the jitted step).
    batch: {"image": (B, S, S, C) float in [-1, 1], "label": (B,) int}.
    key: the randomness of the prior sample z_c.
    hp: the loss weights and the fixed networks' BatchNorm mode (bound by make_train_steps).
  Returns:
    (states with D_C, encoder and decoder updated, {"aae/<term>": scalar}).
  """
  spec = states.spec
  check_batch(spec, batch)
  images = batch["image"].astype(jnp.float32)
  noise, s = sample_prior_inputs(spec, key, images.shape[0], batch.get("label"))
  fixed = functools.partial(apply_fixed, batch_stats=hp.fixed_batch_stats)

  # 1. The fixed networks' outputs: the prior sample z_c (CG fixed: a constant here) and
  #    the reconstruction target F(x) of the fixed image discriminator.
  prior_inputs = prior_input_vector(spec, noise, s)
  prior_codes = (prior_inputs if states.code_generator is None
                 else fixed(states.code_generator, prior_inputs))
  prior_codes = jax.lax.stop_gradient(prior_codes)
  _, _, real_features = fixed(states.image_discriminator, images)

  # 2. enc(x) once; its vjp carries the encoder's gradient back.
  encoder = states.encoder
  codes, encoder_vjp, encoder_stats = jax.vjp(
      lambda params: apply_train(encoder, params, encoder.batch_stats, images),
      encoder.params, has_aux=True)

  # 3. Update the code discriminator.
  (code_disc_loss, code_disc_aux), code_disc_grads = jax.value_and_grad(
      _code_disc_loss, has_aux=True)(
          states.code_discriminator.params, states.code_discriminator,
          code_discriminator_inputs(spec, prior_codes, s),
          code_discriminator_inputs(spec, codes, s))
  code_disc = states.code_discriminator.apply_gradients(grads=code_disc_grads)

  # 4. Encoder and decoder gradients against the updated D_C. d(encoder loss)/d(codes)
  #    drives the encoder; the adversarial term does not depend on the decoder, so
  #    d(encoder loss)/d(decoder) = d(L_rec)/d(decoder), scaled by lambda.
  decoder = states.decoder
  (encoder_loss, aux), (code_grads, decoder_grads) = jax.value_and_grad(
      _autoencoder_loss, argnums=(0, 1), has_aux=True)(
          codes, decoder.params, states=states.replace(code_discriminator=code_disc),
          images=images, real_features=real_features, labels=s, hp=hp)
  (encoder_grads,) = encoder_vjp(code_grads)
  decoder_grads = jax.tree_util.tree_map(lambda g: hp.rec_weight_decoder * g, decoder_grads)

  # 5. Apply.
  new_states = states.replace(
      encoder=encoder.apply_gradients(grads=encoder_grads, batch_stats=encoder_stats),
      decoder=decoder.apply_gradients(grads=decoder_grads, batch_stats=aux.decoder_stats),
      code_discriminator=code_disc)
  metrics = {
      "aae/code_disc_loss": code_disc_loss,
      "aae/feature_rec_loss": aux.feature_loss,
      "aae/pixel_rec_loss": aux.pixel_loss,
      "aae/rec_loss": aux.rec_loss,
      "aae/encoder_adv_loss": aux.adv_loss,
      "aae/encoder_loss": encoder_loss,
      "aae/decoder_loss": hp.rec_weight_decoder * aux.rec_loss,
      "aae/p_code_real": losses.mean_probability(code_disc_aux.real_logits),
      "aae/p_code_fake": losses.mean_probability(code_disc_aux.fake_logits),
  }
  return new_states, metrics


# ------------------------------------------------------------------ prior-improvement phase


class _Generated(NamedTuple):
  noise_images: jax.Array  # x_noise = dec(z_c)
  rec_images: jax.Array    # x_rec = dec(enc(x)), the encoder fixed


def _generate(generator_params, *, states: States, noise, s, codes):
  """x_noise and x_rec as a function of the decoder's (and CG's) parameters; aux: their
  updated batch statistics (the CG's None for the fixed prior)."""
  decoder, code_gen = states.decoder, states.code_generator
  prior_inputs = prior_input_vector(states.spec, noise, s)
  code_gen_stats = None
  if code_gen is None:
    prior_codes = prior_inputs
  else:
    prior_codes, code_gen_stats = apply_train(code_gen, generator_params["code_generator"],
                                              code_gen.batch_stats, prior_inputs)
  decoder_stats = decoder.batch_stats
  noise_images, decoder_stats = apply_train(decoder, generator_params["decoder"],
                                            decoder_stats, prior_codes)
  rec_images, decoder_stats = apply_train(decoder, generator_params["decoder"], decoder_stats,
                                          codes)
  return _Generated(noise_images, rec_images), (code_gen_stats, decoder_stats)


def _info_term(q_logits, s):
  """The InfoGAN term of Q's logits against s: its cross-entropy; 0 without s."""
  return jnp.zeros(()) if s is None else losses.info_loss(q_logits, s)


class _ImageDiscAux(NamedTuple):
  batch_stats: Any
  gan_loss: jax.Array
  info_loss: jax.Array          # Q on generated images
  real_info_loss: jax.Array     # Q on real images (supervised, Q tie)
  real_logits: jax.Array
  noise_logits: jax.Array
  rec_logits: jax.Array
  q_logits: jax.Array
  q_real_logits: jax.Array


def _image_disc_loss(params, image_disc: TrainState, images, generated: _Generated, s,
                     real_targets, hp: StepHyperparams, augment_key=None):
  """D_I as a discriminator (real vs both kinds of generated images), plus Q recovering s
  from x_noise and, with the Q tie, the label from real images."""
  stats = image_disc.batch_stats
  (real_logits, q_real_logits, _), stats = apply_train(image_disc, params, stats, images)
  (noise_logits, q_logits, _), stats = apply_train(image_disc, params, stats,
                                                   generated.noise_images)
  (rec_logits, _, _), stats = apply_train(image_disc, params, stats, generated.rec_images)
  if augment_key is not None:  # Q on the augmented copy (its statistics updates dropped)
    (_, q_logits, _), _ = apply_train(image_disc, params, stats,
                                      augment.random_affine(augment_key, generated.noise_images))
  gan_loss = losses.discriminator_loss(real_logits, noise_logits, rec_logits)
  info_loss = _info_term(q_logits, s)
  real_info_loss = _info_term(q_real_logits, real_targets)
  loss = gan_loss + hp.info_weight * (info_loss + real_info_loss)
  return loss, _ImageDiscAux(stats, gan_loss, info_loss, real_info_loss, real_logits,
                             noise_logits, rec_logits, q_logits, q_real_logits)


class _GeneratorAux(NamedTuple):
  noise_loss: jax.Array
  rec_loss: jax.Array
  info_loss: jax.Array


def _generator_loss(generated: _Generated, image_disc: TrainState, s, hp: StepHyperparams,
                    augment_key=None):
  """The CG's and decoder's loss against D_I (batch statistics as in D_I's own pass; its
  statistics updates are dropped), as a function of the generated images."""
  (noise_logits, q_logits, _), _ = apply_train(image_disc, image_disc.params,
                                               image_disc.batch_stats, generated.noise_images)
  (rec_logits, _, _), _ = apply_train(image_disc, image_disc.params, image_disc.batch_stats,
                                      generated.rec_images)
  noise_loss = losses.generator_loss(noise_logits, hp.gan_loss)
  rec_loss = losses.generator_loss(rec_logits, hp.gan_loss)
  if augment_key is not None:  # the same copy as in D_I's loss (same key)
    (_, q_logits, _), _ = apply_train(image_disc, image_disc.params, image_disc.batch_stats,
                                      augment.random_affine(augment_key, generated.noise_images))
  info_loss = _info_term(q_logits, s)
  loss = (hp.adv_noise_weight * noise_loss + hp.adv_rec_weight * rec_loss
          + hp.info_weight * info_loss)
  return loss, _GeneratorAux(noise_loss, rec_loss, info_loss)


def prior_phase_step(states: States, batch: dict[str, Any], key, *,
                     hp: StepHyperparams) -> tuple[States, Metrics]:
  """Prior-improvement phase: updates D_I (+Q), CG and the decoder; enc and D_C stay fixed.

  Args and result as `aae_phase_step`'s; the metrics are "prior/<term>".
  """
  spec = states.spec
  check_batch(spec, batch)
  images = batch["image"].astype(jnp.float32)
  labels = batch.get("label")
  noise, s = sample_prior_inputs(spec, key, images.shape[0], labels)
  codes = apply_fixed(states.encoder, images, batch_stats=hp.fixed_batch_stats)
  decoder, code_gen = states.decoder, states.code_generator

  # 1. x_noise = dec(z_c) and x_rec = dec(enc(x)) once, differentiable in CG and the
  #    decoder; their vjp carries the generator-side gradient back.
  generator_params = {"decoder": decoder.params}
  if code_gen is not None:
    generator_params["code_generator"] = code_gen.params
  generated, generate_vjp, (code_gen_stats, decoder_stats) = jax.vjp(
      functools.partial(_generate, states=states, noise=noise, s=s, codes=codes),
      generator_params, has_aux=True)

  # 2. Update the image discriminator (+ Q).
  real_targets = labels if spec.q_on_real_images else None
  # fold_in leaves the prior inputs' draws (from `key`) as they are without augmentation.
  augment_key = (jax.random.fold_in(key, 1) if hp.info_augmentation != "none" else None)
  (image_disc_loss, disc_aux), image_disc_grads = jax.value_and_grad(
      _image_disc_loss, has_aux=True)(states.image_discriminator.params,
                                      states.image_discriminator, images, generated, s,
                                      real_targets, hp, augment_key)
  image_disc = states.image_discriminator.apply_gradients(grads=image_disc_grads,
                                                          batch_stats=disc_aux.batch_stats)

  # 3. CG and decoder gradients against the updated D_I.
  (generator_loss, gen_aux), image_grads = jax.value_and_grad(
      _generator_loss, has_aux=True)(generated, image_disc, s, hp, augment_key)
  (generator_grads,) = generate_vjp(image_grads)

  # 4. Apply.
  new_states = states.replace(
      image_discriminator=image_disc,
      decoder=decoder.apply_gradients(grads=generator_grads["decoder"],
                                      batch_stats=decoder_stats))
  if code_gen is not None:
    new_states = new_states.replace(code_generator=code_gen.apply_gradients(
        grads=generator_grads["code_generator"], batch_stats=code_gen_stats))

  metrics = {
      "prior/image_disc_loss": image_disc_loss,
      "prior/image_disc_gan_loss": disc_aux.gan_loss,
      "prior/disc_info_loss": disc_aux.info_loss,
      "prior/generator_loss": generator_loss,
      "prior/generator_noise_loss": gen_aux.noise_loss,
      "prior/generator_rec_loss": gen_aux.rec_loss,
      "prior/generator_info_loss": gen_aux.info_loss,
      "prior/p_image_real": losses.mean_probability(disc_aux.real_logits),
      "prior/p_image_noise": losses.mean_probability(disc_aux.noise_logits),
      "prior/p_image_rec": losses.mean_probability(disc_aux.rec_logits),
  }
  if s is not None:
    metrics["prior/q_accuracy"] = jnp.mean(jnp.argmax(disc_aux.q_logits, -1) == s)
  if real_targets is not None:
    metrics["prior/q_real_info_loss"] = disc_aux.real_info_loss
    metrics["prior/q_real_accuracy"] = jnp.mean(
        jnp.argmax(disc_aux.q_real_logits, -1) == real_targets)
  return new_states, metrics


def skip_if_nonfinite(step_fn, phase: str):
  """Wraps a step so that a NaN/Inf loss or parameter returns the input states unchanged.

  Adds `<phase>/skipped` (1.0 when the step was dropped) to the metrics.
  """
  def guarded(states: States, batch, key):
    new_states, metrics = step_fn(states, batch, key)
    finite = all_finite((metrics, new_states))
    kept = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old), new_states,
                                  states)
    return kept, {**metrics, f"{phase}/skipped": 1.0 - finite.astype(jnp.float32)}
  return guarded


# ------------------------------------------------------------ several iterations per call


def iteration_keys(train_key, step):
  """The (aae, prior) keys of training iteration `step`: a pure function of (train_key,
  step), so resumed, step-by-step and fused runs all draw the same randomness."""
  return jax.random.split(jax.random.fold_in(train_key, step))


def stacked_sharding(batch_sharding):
  """The sharding of k batches stacked on a new leading axis: that axis unsplit, each
  batch split as `batch_sharding` splits one."""
  if batch_sharding is None:
    return None
  return NamedSharding(batch_sharding.mesh, PartitionSpec(None, *batch_sharding.spec))


def check_stacked_batches(batches: dict[str, Any]) -> None:
  """Raises ValueError when the batches lack the leading iterations axis (at trace time)."""
  image = batches.get("image")
  if image is None or image.ndim != 5:
    shape = None if image is None else tuple(image.shape)
    raise ValueError(f"stacked batches need batches['image'] of shape (k, B, H, W, C) (k "
                     f"iterations); got {shape}. Stack k batches with np.stack.")


def run_iterations(aae_step, prior_step, states: States, batches: dict[str, Any], train_key,
                   first_step, *, unroll: bool = False) -> tuple[States, Metrics]:
  """Iterations first_step, ..., first_step + k - 1 of Algorithm 1 on k stacked batches
  (every entry of `batches` has a leading axis of length k).

  Each iteration runs `aae_step` then `prior_step` with the keys of `iteration_keys`,
  exactly as the training loop calls the single steps; `jax.lax.scan` makes it one
  compiled loop (`unroll=True`: k inlined copies, k times the compile time). Returns the
  final states and every metric stacked to shape (k,).
  """
  def iteration(states, step_and_batch):
    step, batch = step_and_batch
    aae_key, prior_key = iteration_keys(train_key, step)
    states, aae_metrics = aae_step(states, batch, aae_key)
    states, prior_metrics = prior_step(states, batch, prior_key)
    return states, {**aae_metrics, **prior_metrics}

  num_steps = jax.tree_util.tree_leaves(batches)[0].shape[0]
  steps = first_step + jnp.arange(num_steps, dtype=jnp.int32)
  return jax.lax.scan(iteration, states, (steps, batches), unroll=unroll)


# ------------------------------------------------------------------------- the jitted steps


class TrainSteps(NamedTuple):
  """The jitted steps of one config (from `make_train_steps`); each donates its states.

  aae_phase(states, batch, key) -> (states, metrics): `aae_phase_step`.
  prior_phase(states, batch, key) -> (states, metrics): `prior_phase_step`.
  iterations(states, batches, train_key, first_step) -> (states, metrics): k iterations of
    both phases over k stacked batches (`run_iterations`), metrics stacked (k,).
  """
  aae_phase: Callable
  prior_phase: Callable
  iterations: Callable


def make_train_steps(config: ml_collections.ConfigDict, *, state_sharding=None,
                     batch_sharding=None) -> TrainSteps:
  """Every jitted step the training loop and users call, with the config's
  hyperparameters bound: the two phases and the fused k-iteration call.

  Args:
    config: the run's config (validated here, before anything is traced).
    state_sharding: where the states live (e.g. replicated over a `data` mesh); None:
      jit's default placement (one device).
    batch_sharding: how one batch is split (e.g. over the mesh's `data` axis); the fused
      call takes k batches stacked on a new leading axis, placed by
      `stacked_sharding(batch_sharding)`.
  Returns:
    TrainSteps. With `config.on_nonfinite == "skip"` a step whose losses or updates are
    not finite leaves the states unchanged. Equal settings return the same functions, so
    their compilations are shared. The fused call is the computation of k single calls
    with `iteration_keys(train_key, step)`, equal up to float reassociation (XLA optimises
    a loop body in another context than a lone step; tests/scale_out_test.py measures it).
  """
  spec = ModelSpec.from_config(config)  # validates before anything is traced
  return _jitted_train_steps(StepHyperparams.from_config(config),
                             config.on_nonfinite == "skip", state_sharding, batch_sharding,
                             step_compiler_options(spec, config.batch_size))


def step_compiler_options(spec: ModelSpec,
                          batch_size: int) -> tuple[tuple[str, Any], ...]:
  """The backend's compiler options of the train steps: heaps that hold the largest buffer,
  bounded by a full-resolution activation (the encoder's and decoder's outer levels)."""
  largest_activation = batch_size * spec.image_size**2 * max(spec.width, spec.channels) * 4
  return spec.backend.compiler_options(largest_activation)


def _phase_steps(hp: StepHyperparams, skip_nonfinite: bool):
  """The two phases with hyperparameters bound (and the non-finite guard), not jitted."""
  steps = []
  for phase, step_fn in (("aae", aae_phase_step), ("prior", prior_phase_step)):
    step_fn = functools.partial(step_fn, hp=hp)
    if skip_nonfinite:
      step_fn = skip_if_nonfinite(step_fn, phase)
    steps.append(step_fn)
  return tuple(steps)


def _run_model_iterations(aae_step, prior_step, states, batches, train_key, first_step):
  check_stacked_batches(batches)
  return run_iterations(aae_step, prior_step, states, batches, train_key, first_step,
                        unroll=states.spec.backend.unroll_fused_iterations)


@functools.lru_cache(maxsize=None)
def _jitted_train_steps(hp: StepHyperparams, skip_nonfinite: bool, state_sharding,
                        batch_sharding, compiler_options=()) -> TrainSteps:
  aae_step, prior_step = _phase_steps(hp, skip_nonfinite)
  step_kwargs, iterations_kwargs = {}, {}
  if compiler_options:
    step_kwargs = iterations_kwargs = dict(compiler_options=dict(compiler_options))
  if state_sharding is not None or batch_sharding is not None:
    mesh = (batch_sharding or state_sharding).mesh
    step_kwargs = dict(step_kwargs, in_shardings=(state_sharding, batch_sharding, None),
                       out_shardings=(state_sharding, None))
    iterations_kwargs = dict(
        iterations_kwargs,
        in_shardings=(state_sharding, stacked_sharding(batch_sharding), None, None),
        out_shardings=(state_sharding, NamedSharding(mesh, PartitionSpec())))
  return TrainSteps(
      aae_phase=jax.jit(aae_step, donate_argnums=0, **step_kwargs),
      prior_phase=jax.jit(prior_step, donate_argnums=0, **step_kwargs),
      iterations=jax.jit(functools.partial(_run_model_iterations, aae_step, prior_step),
                         donate_argnums=0, **iterations_kwargs))
