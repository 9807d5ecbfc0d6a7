"""The two phase steps: which networks each updates, determinism, gradient paths, errors."""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lpaae_jax
from lpaae_jax import backend
from lpaae_jax import config_validation
from lpaae_jax import input_pipeline
from lpaae_jax import models
from lpaae_jax import train_steps
from lpaae_jax.cpu import compiler
from lpaae_jax.forward import apply_eval
from tests.helpers import (NETWORKS, VARIANTS, compiled_steps, leaves_equal,
                           random_batch, tiny_config, to_host)

# DESIGN §3: what each phase updates; every other network must stay bit-identical.
UPDATED = {
    "aae": {"encoder", "decoder", "code_discriminator"},
    "prior": {"image_discriminator", "decoder", "code_generator"},
}


# Every value of the fields that change what a step computes, beside the defaults (batch
# statistics for fixed networks, all three feature layers), in as few extra compilations as
# cover them.
FIELD_CASES = [
    ("supervised", "learned", {"model.fixed_batch_norm": "running", "loss.feature_layers": (3,),
                               "loss.pixel_rec_weight": 1.0}),
    # The networks' options (SPEC §1): the other value of each.
    ("none", "learned", {"model.upsampling": "resize_conv", "model.decoder_norm": "batch"}),
    ("unsupervised", "learned", {"model.code_generator_s_scale": 8.0,
                                 "loss.info_augmentation": "affine"}),
]


@pytest.mark.parametrize("condition,prior,overrides",
                         [(c, p, {}) for c, p in VARIANTS] + FIELD_CASES)
def test_each_phase_updates_exactly_its_networks(condition, prior, overrides):
  config = tiny_config(condition, prior, **overrides)
  steps = compiled_steps(condition, prior, **overrides)
  aae_step, prior_step = steps.aae_phase, steps.prior_phase
  states = lpaae_jax.create_states(config, jax.random.key(0))
  assert (states.code_generator is None) == (prior == "fixed")
  batch = random_batch()
  # Two iterations: in the second, every Adam moment is non-zero, so a fixed network that
  # went through its optimizer with a zero gradient would move.
  for iteration in range(2):
    for phase, step in (("aae", aae_step), ("prior", prior_step)):
      before = to_host(states)
      states, metrics = step(states, batch, jax.random.key(10 * iteration + len(phase)))
      after = to_host(states)
      for name in NETWORKS:
        old, new = getattr(before, name), getattr(after, name)
        if old is None:
          assert new is None
          continue
        where = f"{phase} phase, iteration {iteration}, {name}"
        if name in UPDATED[phase]:
          assert not leaves_equal(old.params, new.params), f"{where}: params did not move"
          assert not leaves_equal(old.opt_state, new.opt_state), where
          assert int(new.step) == int(old.step) + 1, where
          if old.batch_stats:
            assert not leaves_equal(old.batch_stats, new.batch_stats), where
        else:
          for part in ("params", "opt_state", "batch_stats", "step"):
            assert leaves_equal(getattr(old, part), getattr(new, part)), (
                f"{where}: fixed network's {part} changed")
      for key, value in metrics.items():
        assert np.isfinite(float(value)), f"{phase} metric {key} = {value}"
      assert ("prior/q_accuracy" in metrics) == (phase == "prior" and condition != "none")
      assert ("prior/q_real_accuracy" in metrics) == (phase == "prior"
                                                      and condition == "supervised")


def test_same_key_and_batch_give_bit_identical_states():
  config = tiny_config()
  steps = compiled_steps()
  aae_step, prior_step = steps.aae_phase, steps.prior_phase
  batch = random_batch(1)
  results = []
  for _ in range(2):
    states = lpaae_jax.create_states(config, jax.random.key(3))
    states, _ = aae_step(states, batch, jax.random.key(4))
    states, _ = prior_step(states, batch, jax.random.key(5))
    results.append(to_host(states))
  assert leaves_equal(results[0], results[1])


def _fusions_with(op: str, compiled_text: str, ynnpack: bool = True) -> int:
  """How many of the compiled module's YNNPACK fusions (ynnpack=False: XLA's own fusions)
  hold an `op` instruction."""
  called = re.findall(r"calls=%([\w.\-]+)([^\n]*)", compiled_text)
  bodies = dict(re.findall(r"^%([\w.\-]+) [^\n]*\{\n(.*?)\n\}", compiled_text, re.M | re.S))
  return sum(f" {op}(" in bodies.get(name, "") for name, rest in called
             if ("__ynn_fusion" in rest) == ynnpack)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU fast paths' options")
def test_cpu_fast_paths_compile_the_steps_with_the_cpu_compiler_options():
  """make_train_steps compiles with cpu/compiler.py's OPTIONS (and the temporaries' heaps)
  under the CPU fast paths: YNNPACK takes fewer of the step's convolutions than in a plain
  jit of the same step, and it takes the reductions (the bias gradients; XLA's own are slow
  reduce-windows)."""
  config = tiny_config()
  assert backend.Backend(cpu=True).compiler_options() == compiler.OPTIONS + (
      ("xla_multiheap_size_constraint_per_heap", compiler.TEMP_HEAP_BYTES),)
  assert backend.Backend(cpu=False).compiler_options() == ()
  states = lpaae_jax.create_states(config, jax.random.key(0))
  args = (states, random_batch(), jax.random.key(1))
  ours = compiled_steps().aae_phase.lower(*args).compile().as_text()
  plain = jax.jit(functools.partial(train_steps.aae_phase_step,
                                    hp=train_steps.StepHyperparams.from_config(config)))
  plain_text = plain.lower(*args).compile().as_text()
  assert _fusions_with("convolution", ours) < _fusions_with("convolution", plain_text)
  # Without LIBRARY_FUSION_TYPE_REDUCE XLA keeps most of them (16 YNNPACK vs 52 XLA here).
  assert _fusions_with("reduce", ours) > _fusions_with("reduce", ours, ynnpack=False)


def test_compiler_options_this_jaxlib_rejects_are_left_out(monkeypatch, caplog):
  monkeypatch.setattr(compiler, "OPTIONS",
                      (("xla_cpu_experimental_ynn_fusion_type", "NOT_A_FUSION_TYPE"),))
  compiler.compiler_options.cache_clear()
  try:
    assert compiler.compiler_options() == (
        ("xla_multiheap_size_constraint_per_heap", compiler.TEMP_HEAP_BYTES),)
    assert "rejects the CPU compiler option" in caplog.text
  finally:
    compiler.compiler_options.cache_clear()


def test_temporary_heaps_hold_the_largest_activation():
  heap = lambda options: dict(options)["xla_multiheap_size_constraint_per_heap"]
  spec = lambda width, fast=True: dataclasses.replace(
      models.ModelSpec.from_config(tiny_config()), width=width, image_size=32,
      backend=backend.Backend(cpu=fast))
  assert heap(train_steps.step_compiler_options(spec(16), 64)) == compiler.TEMP_HEAP_BYTES
  # Width 64 at batch 256: a 32x32x64 float32 activation is 64 MiB.
  assert heap(train_steps.step_compiler_options(spec(64), 256)) == 64 * 2**20
  assert train_steps.step_compiler_options(spec(64, fast=False), 256) == ()


def test_different_keys_give_different_samples():
  states = lpaae_jax.create_states(tiny_config("unsupervised"), jax.random.key(0))
  a = lpaae_jax.sample(states, jax.random.key(1), 4)
  b = lpaae_jax.sample(states, jax.random.key(2), 4)
  assert a.shape == (4, 32, 32, 1) and not np.array_equal(a, b)
  np.testing.assert_array_equal(a, lpaae_jax.sample(states, jax.random.key(1), 4))
  fixed_s = lpaae_jax.sample(states, jax.random.key(1), 4, s=np.array([0, 1, 2, 3]))
  assert fixed_s.shape == (4, 32, 32, 1)
  with pytest.raises(ValueError, match=r"\[0, 10\)"):
    lpaae_jax.sample(states, jax.random.key(1), 2, s=np.array([0, 10]))
  codes = lpaae_jax.encode(states, a)
  assert codes.shape == (4, 16)
  assert lpaae_jax.reconstruct(states, a).shape == a.shape


def _with_dead_decoder(states):
  """`states` with the decoder's output layer zeroed: dec(z) no longer depends on z."""
  decoder_params = dict(states.decoder.params)
  output_layer = max(name for name in decoder_params if name.startswith("Conv_"))
  decoder_params[output_layer] = jax.tree_util.tree_map(jnp.zeros_like,
                                                        decoder_params[output_layer])
  return states.replace(decoder=states.decoder.replace(params=decoder_params))


def test_code_generator_gradient_flows_only_through_the_decoder():
  """With the decoder's output layer zeroed, dec(z_c) no longer depends on z_c: the code
  generator must then get an exactly zero gradient (Adam leaves it bit-identical)."""
  config = tiny_config()
  prior_step = compiled_steps().prior_phase
  states = _with_dead_decoder(lpaae_jax.create_states(config, jax.random.key(0)))
  before = to_host(states.code_generator.params)
  states, _ = prior_step(states, random_batch(), jax.random.key(1))
  assert leaves_equal(before, to_host(states.code_generator.params))

  # Control: with a live decoder the same step moves the code generator.
  states = lpaae_jax.create_states(config, jax.random.key(0))
  before = to_host(states.code_generator.params)
  states, _ = prior_step(states, random_batch(), jax.random.key(1))
  assert not leaves_equal(before, to_host(states.code_generator.params))


def test_info_augmentation_changes_only_what_q_reads():
  """loss.info_augmentation='affine': the same draws of z and s (so the same x_noise and D_I's
  GAN term), but Q's info terms are taken on the transformed copy. (The generator's terms
  differ either way: they are taken against the D_I each update left.)"""
  metrics = {}
  for augmentation in ("none", "affine"):
    overrides = {"loss.info_augmentation": augmentation} if augmentation != "none" else {}
    prior_step = compiled_steps("unsupervised", "learned", **overrides).prior_phase
    states = lpaae_jax.create_states(tiny_config("unsupervised", "learned"),
                                     jax.random.key(0))  # the step donates its states
    metrics[augmentation] = prior_step(states, random_batch(), jax.random.key(1))[1]
  for name in ("prior/image_disc_gan_loss", "prior/p_image_noise", "prior/p_image_rec"):
    np.testing.assert_allclose(metrics["affine"][name], metrics["none"][name], rtol=1e-6)
  for name in ("prior/disc_info_loss", "prior/generator_info_loss"):
    assert abs(float(metrics["affine"][name]) - float(metrics["none"][name])) > 1e-4


@pytest.mark.parametrize("field,value,match", [
    ("model.condition", "semi", "model.condition='semi'.*none, supervised, unsupervised"),
    ("model.prior", "gaussian", "model.prior='gaussian'.*learned, fixed"),
    ("loss.gan_loss", "hinge", "loss.gan_loss='hinge'.*non_saturating, minimax"),
    ("optim.learning_rate", -1.0, "optim.learning_rate"),
    ("optim.learning_rate_scales.image_discriminator", 0.0,
     "optim.learning_rate_scales.image_discriminator=0.0.*> 0"),
    ("model.fixed_batch_norm", "frozen", "model.fixed_batch_norm='frozen'.*batch, running"),
    ("loss.feature_layers", (4,), r"loss.feature_layers=\(4,\).*1, 2, 3"),
    ("loss.feature_layers", (), r"loss.feature_layers=\(\).*non-empty"),
    ("loss.feature_layers", (3, 3), r"loss.feature_layers=\(3, 3\).*distinct"),
    ("loss.adv_rec_weight", -0.5, "loss.adv_rec_weight=-0.5.*>= 0"),
    ("loss.adv_noise_weight", float("nan"), "loss.adv_noise_weight=nan.*finite"),
    ("model.code_generator_s_scale", 0.0, "model.code_generator_s_scale=0.0.*> 0"),
    ("loss.info_augmentation", "rotate", "loss.info_augmentation='rotate'.*none, affine"),
    ("model.upsampling", "bilinear", "model.upsampling='bilinear'.*transposed, resize_conv"),
    ("model.decoder_norm", "layer", "model.decoder_norm='layer'.*none, batch"),
])
def test_bad_config_raises_before_compiling(field, value, match):
  with pytest.raises(config_validation.ConfigError, match=match):
    lpaae_jax.make_train_steps(tiny_config(**{field: value}))
  with pytest.raises(ValueError, match=match):
    lpaae_jax.create_states(tiny_config(**{field: value}), jax.random.key(0))


@pytest.mark.parametrize("field,value", [("model.label_tie", "none"),
                                         ("model.image_disc_norm", "spectral"),
                                         ("model.image_disc_width", 6)])
def test_a_retired_option_is_one_line_naming_its_commit(field, value):
  config = tiny_config("supervised")
  parent, leaf = field.split(".")
  with config.unlocked():
    config[parent][leaf] = value  # as a config stored before the option was retired
  match = rf"^config\.{re.escape(field)}={re.escape(repr(value))} sets a retired field: .*2b0a9d1"
  with pytest.raises(config_validation.ConfigError, match=match):
    lpaae_jax.make_train_steps(config)
  with pytest.raises(config_validation.ConfigError, match=match):
    lpaae_jax.create_states(config, jax.random.key(0))


def test_fixed_prior_code_dim_must_exceed_num_classes():
  config = tiny_config("supervised", "fixed", **{"model.code_dim": 10})
  with pytest.raises(ValueError, match="model.code_dim=10.*num_classes=10"):
    lpaae_jax.make_train_steps(config)
  # The unconditional fixed prior has no one-hot part, so a small code is fine.
  lpaae_jax.make_train_steps(tiny_config("none", "fixed", **{"model.code_dim": 4}))


@pytest.mark.parametrize("bad_batch,match", [
    ({"image": jnp.zeros((16, 32, 32, 3)), "label": jnp.zeros(16, jnp.int32)},
     "model.channels=1"),
    ({"image": jnp.zeros((16, 28, 28, 1)), "label": jnp.zeros(16, jnp.int32)},
     "model.image_size=32"),
    ({"image": jnp.zeros((16, 32, 32, 1))}, "needs batch\\['label'\\]"),
])
def test_batch_not_matching_config_raises_at_trace_time(bad_batch, match):
  aae_step = compiled_steps("supervised", "learned").aae_phase
  states = lpaae_jax.create_states(tiny_config("supervised"), jax.random.key(0))
  with pytest.raises(ValueError, match=match):
    aae_step(states, bad_batch, jax.random.key(0))


def test_overfit_sixteen_real_digits(real_data_dir):
  """200 iterations of both phases on one fixed batch of 16 real MNIST digits lower the
  feature reconstruction loss clearly.

  D_I's features change while it trains, so the loss is compared in one metric: the
  final D_I's feature layers (loss.feature_layers), for the initial and the final
  autoencoder. lr 1e-3 (5x the
  default) makes 200 iterations of this tiny model enough to see it.
  """
  overrides = {"optim.learning_rate": 1e-3}
  config = tiny_config(**overrides, **{"data_dir": str(real_data_dir), "download": False})
  images, labels = input_pipeline.load_split_arrays(config, "test", num=16)
  batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
  steps = compiled_steps(**overrides)
  aae_step, prior_step = steps.aae_phase, steps.prior_phase
  states = lpaae_jax.create_states(config, jax.random.key(0))
  initial = to_host(states)
  for step in range(200):
    key = jax.random.fold_in(jax.random.key(1), step)
    states, aae_metrics = aae_step(states, batch, key)
    states, _ = prior_step(states, batch, jax.random.fold_in(key, 1))
    assert np.isfinite(float(aae_metrics["aae/feature_rec_loss"])), step

  hyperparams = train_steps.StepHyperparams.from_config(config)

  def feature_loss(autoencoder_states):
    reconstructions = lpaae_jax.reconstruct(autoencoder_states, batch["image"])
    features = lambda x: apply_eval(states.image_discriminator, x)[2]
    return float(train_steps.layers_feature_loss(
        hyperparams, features(batch["image"]), features(reconstructions)))

  initial = states.replace(encoder=initial.encoder, decoder=initial.decoder)
  before, after = feature_loss(initial), feature_loss(states)
  pixel = lambda s: float(jnp.mean((lpaae_jax.reconstruct(s, batch["image"]) -
                                    batch["image"])**2))
  print(f"\nfeature rec loss (final D_I) {before:.4f} -> {after:.4f}; "
        f"pixel MSE {pixel(initial):.4f} -> {pixel(states):.4f}")
  assert after < 0.7 * before  # measured 0.63 (summed over layers 1-3)
  assert pixel(states) < 0.6 * pixel(initial)


def test_code_generator_input_scales_s_and_the_fixed_prior_code_does_not():
  from lpaae_jax import models
  from lpaae_jax.forward import prior_input_vector
  noise, s = jnp.zeros((2, 3)), jnp.array([1, 0])
  learned = models.ModelSpec(condition="unsupervised", num_classes=2,
                             code_generator_s_scale=8.0)
  np.testing.assert_array_equal(prior_input_vector(learned, noise, s)[:, 3:],
                                [[0.0, 8.0], [8.0, 0.0]])
  fixed = models.ModelSpec(condition="unsupervised", prior="fixed", num_classes=2,
                           code_generator_s_scale=8.0)
  np.testing.assert_array_equal(prior_input_vector(fixed, noise, s)[:, 3:],
                                [[0.0, 1.0], [1.0, 0.0]])
