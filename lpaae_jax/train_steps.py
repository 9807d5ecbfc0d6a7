"""The two phases of Algorithm 1 (DESIGN §3) as pure functions `(states, batch, key) ->
(states, metrics)`.

Each phase differentiates only the networks it updates and returns the others untouched
(same arrays: params, optimizer state and batch statistics). Networks a phase keeps fixed
normalise with their running BatchNorm averages or with the batch's own statistics
(`model.fixed_batch_norm`); their running averages are never updated. Within a phase the
discriminator is updated first and the generator-side networks then train against the
updated discriminator, in the order of Algorithm 1; each shared forward pass (enc(x);
dec(z_c) and dec(enc(x))) is computed once and its vjp carries the generator gradient back.

Supervised label tie (DESIGN §2, `model.label_tie`): with `code_discriminator` D_C judges
[z_c; one-hot y] against [enc(x); one-hot y] (s = y, the batch's labels), so each class's
codes must match the prior of that class; with `q_real` the Q head also learns y from the
real images, so the info term makes dec(z_c(s)) look like class s to a classifier of real
data; `both` uses both.
"""

import dataclasses
import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec

from lpaae_jax import losses
from lpaae_jax.states import ModelSpec, States, TrainState

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


def _variables(state: TrainState, params=None) -> dict[str, Any]:
  variables = {"params": state.params if params is None else params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def apply_train(state: TrainState, params, batch_stats, *inputs):
  """Training-mode forward pass with explicit params and batch stats.

  Returns (outputs, new batch_stats).
  """
  if not batch_stats:
    return state.apply_fn({"params": params}, *inputs, train=True), batch_stats
  outputs, updates = state.apply_fn({"params": params, "batch_stats": batch_stats}, *inputs,
                                    train=True, mutable=["batch_stats"])
  return outputs, updates["batch_stats"]


def apply_eval(state: TrainState, *inputs):
  """Inference-mode forward pass (running BatchNorm averages, nothing updated)."""
  return state.apply_fn(_variables(state), *inputs, train=False)


def apply_fixed(state: TrainState, *inputs, batch_stats: bool):
  """Forward pass of a network the phase keeps fixed: normalised by the batch's own
  statistics (`batch_stats=True`) or by the running averages; the running averages are
  never updated (the batch-statistics pass's updates are dropped)."""
  if batch_stats and state.batch_stats:
    return apply_train(state, state.params, state.batch_stats, *inputs)[0]
  return apply_eval(state, *inputs)


def sample_prior_inputs(spec: ModelSpec, key, batch_size: int,
                        labels=None) -> tuple[jax.Array, Optional[jax.Array]]:
  """Draws the prior's inputs: noise z and the condition s (integer labels, or None).

  Supervised: s is the batch's labels; unsupervised: s ~ Categorical(num_classes).
  """
  noise_key, s_key = jax.random.split(key)
  noise = jax.random.normal(noise_key, (batch_size, spec.noise_size), jnp.float32)
  if spec.condition == "supervised":
    s = labels
  elif spec.condition == "unsupervised":
    s = jax.random.randint(s_key, (batch_size,), 0, spec.num_classes)
  else:
    s = None
  return noise, s


def prior_input_vector(spec: ModelSpec, noise, s):
  """[z; one-hot s] for a conditional setting, else z."""
  if s is None:
    return noise
  return jnp.concatenate([noise, jax.nn.one_hot(s, spec.num_classes, dtype=noise.dtype)], -1)


def prior_codes_eval(states: States, noise, s):
  """z_c in inference mode: CG([z; s]) for the learned prior, [z'; s] for the fixed one."""
  inputs = prior_input_vector(states.spec, noise, s)
  if states.code_generator is None:
    return inputs
  return apply_eval(states.code_generator, inputs)


def code_discriminator_inputs(spec: ModelSpec, codes, labels):
  """What D_C judges: the code, with the one-hot label appended under the code tie."""
  if not spec.label_conditioned_code_discriminator:
    return codes
  return jnp.concatenate([codes, jax.nn.one_hot(labels, spec.num_classes, dtype=codes.dtype)],
                         -1)


def feature_reconstruction_loss(hp: StepHyperparams, real_features, rec_features):
  """L_rec's learned-metric part: the feature MSE summed over `hp.feature_layers`."""
  return sum(losses.feature_reconstruction_loss(real_features[layer - 1],
                                                rec_features[layer - 1])
             for layer in hp.feature_layers)


# ----------------------------------------------------------------------------- AAE phase


class _AutoencoderAux(NamedTuple):
  decoder_stats: Any
  feature_loss: jax.Array
  pixel_loss: jax.Array
  rec_loss: jax.Array
  adv_loss: jax.Array


def aae_phase_step(states: States, batch: dict[str, Any], key, *,
                   hp: StepHyperparams) -> tuple[States, Metrics]:
  """AAE phase: updates D_C, the encoder and the decoder; CG and D_I stay fixed."""
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

  # 3. Code discriminator: prior samples are real, encoder codes are fake.
  code_disc = states.code_discriminator
  disc_input = functools.partial(code_discriminator_inputs, spec, labels=s)

  def code_disc_loss_fn(params):
    real_logits = code_disc.apply_fn({"params": params}, disc_input(prior_codes))
    fake_logits = code_disc.apply_fn({"params": params}, disc_input(codes))
    return losses.discriminator_loss(real_logits, fake_logits), (real_logits, fake_logits)

  (code_disc_loss, (real_logits, fake_logits)), code_disc_grads = jax.value_and_grad(
      code_disc_loss_fn, has_aux=True)(code_disc.params)
  code_disc = code_disc.apply_gradients(grads=code_disc_grads)

  # 4. Encoder and decoder against the updated D_C: L_rec + the code adversary.
  image_disc, decoder = states.image_discriminator, states.decoder

  def autoencoder_loss_fn(codes, decoder_params):
    reconstructions, decoder_stats = apply_train(decoder, decoder_params, decoder.batch_stats,
                                                 codes)
    _, _, rec_features = fixed(image_disc, reconstructions)
    feature_loss = feature_reconstruction_loss(hp, real_features, rec_features)
    pixel_loss = losses.pixel_reconstruction_loss(images, reconstructions)
    rec_loss = feature_loss + hp.pixel_rec_weight * pixel_loss
    adv_loss = losses.generator_loss(
        code_disc.apply_fn({"params": code_disc.params}, disc_input(codes)), hp.gan_loss)
    encoder_loss = rec_loss + hp.adv_code_weight * adv_loss
    return encoder_loss, _AutoencoderAux(decoder_stats, feature_loss, pixel_loss, rec_loss,
                                         adv_loss)

  # d(encoder_loss)/d(codes) drives the encoder; the adversarial term does not depend on the
  # decoder, so d(encoder_loss)/d(decoder) = d(L_rec)/d(decoder), scaled by lambda below.
  (encoder_loss, aux), (code_grads, decoder_grads) = jax.value_and_grad(
      autoencoder_loss_fn, argnums=(0, 1), has_aux=True)(codes, decoder.params)
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
      "aae/p_code_real": losses.mean_probability(real_logits),
      "aae/p_code_fake": losses.mean_probability(fake_logits),
  }
  return new_states, metrics


# ------------------------------------------------------------------ prior-improvement phase


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


class _GeneratorAux(NamedTuple):
  noise_loss: jax.Array
  rec_loss: jax.Array
  info_loss: jax.Array


def prior_phase_step(states: States, batch: dict[str, Any], key, *,
                     hp: StepHyperparams) -> tuple[States, Metrics]:
  """Prior-improvement phase: updates D_I (+Q), CG and the decoder; enc and D_C stay fixed."""
  spec = states.spec
  check_batch(spec, batch)
  images = batch["image"].astype(jnp.float32)
  labels = batch.get("label")
  noise, s = sample_prior_inputs(spec, key, images.shape[0], labels)
  codes = apply_fixed(states.encoder, images, batch_stats=hp.fixed_batch_stats)
  decoder, code_gen = states.decoder, states.code_generator

  # 1. x_noise = dec(z_c) and x_rec = dec(enc(x)) once, differentiable in CG and the
  #    decoder; their vjp carries the generator-side gradient back.
  def generate(params):
    prior_inputs = prior_input_vector(spec, noise, s)
    code_gen_stats = None
    if code_gen is None:
      prior_codes = prior_inputs
    else:
      prior_codes, code_gen_stats = apply_train(code_gen, params["code_generator"],
                                                code_gen.batch_stats, prior_inputs)
    decoder_stats = decoder.batch_stats
    noise_images, decoder_stats = apply_train(decoder, params["decoder"], decoder_stats,
                                              prior_codes)
    rec_images, decoder_stats = apply_train(decoder, params["decoder"], decoder_stats, codes)
    return (noise_images, rec_images), (code_gen_stats, decoder_stats)

  generator_params = {"decoder": decoder.params}
  if code_gen is not None:
    generator_params["code_generator"] = code_gen.params
  (noise_images, rec_images), generate_vjp, (code_gen_stats, decoder_stats) = jax.vjp(
      generate, generator_params, has_aux=True)

  def info_term(q_logits, targets):
    return losses.info_loss(q_logits, targets) if targets is not None else jnp.zeros(())

  # 2. Image discriminator (+ Q): real vs both kinds of generated images; Q recovers s from
  #    x_noise and, with the Q tie, the label from real images.
  image_disc = states.image_discriminator
  real_targets = labels if spec.q_on_real_images else None

  def image_disc_loss_fn(params):
    stats = image_disc.batch_stats
    (real_logits, q_real_logits, _), stats = apply_train(image_disc, params, stats, images)
    (noise_logits, q_logits, _), stats = apply_train(image_disc, params, stats, noise_images)
    (rec_logits, _, _), stats = apply_train(image_disc, params, stats, rec_images)
    gan_loss = losses.discriminator_loss(real_logits, noise_logits, rec_logits)
    info_loss = info_term(q_logits, s)
    real_info_loss = info_term(q_real_logits, real_targets)
    loss = gan_loss + hp.info_weight * (info_loss + real_info_loss)
    return loss, _ImageDiscAux(stats, gan_loss, info_loss, real_info_loss, real_logits,
                               noise_logits, rec_logits, q_logits, q_real_logits)

  (image_disc_loss, disc_aux), image_disc_grads = jax.value_and_grad(
      image_disc_loss_fn, has_aux=True)(image_disc.params)
  image_disc = image_disc.apply_gradients(grads=image_disc_grads,
                                          batch_stats=disc_aux.batch_stats)

  # 3. CG and decoder against the updated D_I (batch statistics as in D_I's own pass; its
  #    statistics updates are dropped).
  def generator_loss_fn(noise_images, rec_images):
    (noise_logits, q_logits, _), _ = apply_train(image_disc, image_disc.params,
                                                 image_disc.batch_stats, noise_images)
    (rec_logits, _, _), _ = apply_train(image_disc, image_disc.params, image_disc.batch_stats,
                                        rec_images)
    noise_loss = losses.generator_loss(noise_logits, hp.gan_loss)
    rec_loss = losses.generator_loss(rec_logits, hp.gan_loss)
    info_loss = info_term(q_logits, s)
    loss = (hp.adv_noise_weight * noise_loss + hp.adv_rec_weight * rec_loss
            + hp.info_weight * info_loss)
    return loss, _GeneratorAux(noise_loss, rec_loss, info_loss)

  (generator_loss, gen_aux), image_grads = jax.value_and_grad(
      generator_loss_fn, argnums=(0, 1), has_aux=True)(noise_images, rec_images)
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
    checks = [jnp.all(jnp.isfinite(v)) for v in metrics.values()]
    checks += [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(new_states)
               if jnp.issubdtype(x.dtype, jnp.floating)]
    finite = jnp.all(jnp.stack(checks))
    kept = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old), new_states,
                                  states)
    return kept, {**metrics, f"{phase}/skipped": 1.0 - finite.astype(jnp.float32)}
  return guarded


def make_train_steps(config: ml_collections.ConfigDict, *, state_sharding=None,
                     batch_sharding=None):
  """Returns jitted `(aae_phase_step, prior_phase_step)` with hyperparameters bound.

  Both donate the input states. Shardings (e.g. replicated states, batch split over a
  `data` mesh axis) are optional; without them jit places everything on the default device.
  With `config.on_nonfinite == "skip"` a step whose losses or updates are not finite
  leaves the states unchanged. Equal settings return the same jitted functions, so their
  compilations are shared.
  """
  ModelSpec.from_config(config)  # validates before anything is traced
  return _jitted_steps(StepHyperparams.from_config(config), config.on_nonfinite == "skip",
                       state_sharding, batch_sharding)


def _phase_steps(hp: StepHyperparams, skip_nonfinite: bool):
  """The two phases with hyperparameters bound (and the non-finite guard), not jitted."""
  steps = []
  for phase, step_fn in (("aae", aae_phase_step), ("prior", prior_phase_step)):
    step_fn = functools.partial(step_fn, hp=hp)
    if skip_nonfinite:
      step_fn = skip_if_nonfinite(step_fn, phase)
    steps.append(step_fn)
  return tuple(steps)


@functools.lru_cache(maxsize=None)
def _jitted_steps(hp: StepHyperparams, skip_nonfinite: bool, state_sharding, batch_sharding):
  jit_kwargs = {}
  if state_sharding is not None or batch_sharding is not None:
    jit_kwargs = dict(in_shardings=(state_sharding, batch_sharding, None),
                      out_shardings=(state_sharding, None))
  return tuple(jax.jit(step_fn, donate_argnums=0, **jit_kwargs)
               for step_fn in _phase_steps(hp, skip_nonfinite))


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


def _run_model_iterations(aae_step, prior_step, states, batches, train_key, first_step):
  check_stacked_batches(batches)
  # With the CPU fast paths, fused iterations are unrolled: XLA:CPU leaves the
  # weight-gradient convolutions of a while-loop body in non-canonical layouts and emits
  # them as plain loops (a rolled scan measured 12x slower per iteration than single
  # steps). GPUs and TPUs keep the rolled loop, whose compile time does not grow with k.
  return run_iterations(aae_step, prior_step, states, batches, train_key, first_step,
                        unroll=states.spec.cpu_fast_paths)


def make_multi_step(config: ml_collections.ConfigDict, *, state_sharding=None,
                    batch_sharding=None):
  """Returns jitted `(states, batches, train_key, first_step) -> (states, metrics)`.

  It runs k = batches' leading axis iterations (both phases each) in one call: the
  computation of k calls of the `make_train_steps` pair with `iteration_keys(train_key,
  step)`, equal up to float reassociation (XLA optimises a loop body in another context
  than a lone step; tests/scale_out_test.py measures the drift). Metrics come back stacked
  (k,). `batch_sharding` is that of one batch (as for `make_train_steps`); the stacked
  batches are expected in `stacked_sharding(batch_sharding)`. Donates the input states;
  equal settings share the jitted function (one compilation per k).
  """
  ModelSpec.from_config(config)  # validates before anything is traced
  return _jitted_multi_step(StepHyperparams.from_config(config), config.on_nonfinite == "skip",
                            state_sharding, batch_sharding)


@functools.lru_cache(maxsize=None)
def _jitted_multi_step(hp: StepHyperparams, skip_nonfinite: bool, state_sharding,
                       batch_sharding):
  jit_kwargs = {}
  if state_sharding is not None or batch_sharding is not None:
    mesh = (batch_sharding or state_sharding).mesh
    jit_kwargs = dict(in_shardings=(state_sharding, stacked_sharding(batch_sharding), None,
                                    None),
                      out_shardings=(state_sharding, NamedSharding(mesh, PartitionSpec())))
  return jax.jit(functools.partial(_run_model_iterations,
                                   *_phase_steps(hp, skip_nonfinite)),
                 donate_argnums=0, **jit_kwargs)
