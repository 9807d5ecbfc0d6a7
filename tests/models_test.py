"""Shapes, dtypes and parameter counts of every network (DESIGN §1)."""

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpaae_jax.configs import test as test_config
from lpaae_jax import backend
from lpaae_jax import input_pipeline
from lpaae_jax import models
from lpaae_jax.models import ModelSpec
from lpaae_jax.states import init_states, make_optimizers


def _mnist_batch_padded(batch=3):
  """28x28 gray digits through the pipeline's preprocessing (scale, then pad to 32)."""
  digits = np.random.default_rng(0).integers(0, 256, (batch, 28, 28, 1)).astype(np.uint8)
  return jnp.asarray(np.asarray(input_pipeline.preprocess_images(digits)))


@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes_and_dtypes(channels):
  spec = ModelSpec(channels=channels, width=4, code_dim=16, noise_dim=8, disc_hidden=32,
                   code_disc_hidden=(32, 16))
  key = jax.random.key(0)
  images = (_mnist_batch_padded() if channels == 1 else
            jax.random.uniform(key, (3, 32, 32, 3), minval=-1, maxval=1))
  codes = jax.random.normal(key, (3, 16))

  # Shapes and dtypes by abstract evaluation: no XLA compile (the step tests run the nets).
  def run_all(images, codes):
    def run(module, x):  # init, then a training-mode forward pass
      variables = module.init(key, x, train=False)
      return module.apply(variables, x, train=True, mutable=["batch_stats"])[0]
    return (run(spec.encoder(), images), run(spec.decoder(), codes),
            run(spec.code_generator(), codes[:, :8]), run(spec.image_discriminator(), images),
            run(spec.code_discriminator(), codes))

  encoded, decoded, generated, (logit, q_logits, features), code_logit = jax.eval_shape(
      run_all, images, codes)
  assert encoded.shape == (3, 16)
  assert decoded.shape == (3, 32, 32, channels) and decoded.dtype == jnp.float32
  assert generated.shape == (3, 16)
  assert logit.shape == (3,) and q_logits.shape == (3, 10)
  # The three conv layers; the last is the feature layer F: 4x4x4w.
  assert [f.shape for f in features] == [(3, 16, 16, 4), (3, 8, 8, 8), (3, 4, 4, 16)]
  assert code_logit.shape == (3,)
  for out in (encoded, generated, logit, q_logits, *features, code_logit):
    assert out.dtype == jnp.float32


def test_resolution_levels_follow_image_size():
  assert models.num_resolution_levels(32) == 3
  assert [models.level_width(64, level) for level in range(5)] == [64, 128, 256, 512, 512]


def test_bfloat16_compute_keeps_float32_params():
  spec = ModelSpec(channels=1, width=4, code_dim=16, noise_dim=8, disc_hidden=32,
                   code_disc_hidden=(32,), compute_dtype="bfloat16")
  variables = jax.eval_shape(
      lambda key: spec.decoder().init(key, jnp.zeros((2, 16)), train=False), jax.random.key(0))
  out = jax.eval_shape(lambda v: spec.decoder().apply(v, jnp.zeros((2, 16)), train=False),
                       variables)
  assert out.dtype == jnp.float32  # outputs are cast back for the float32 losses
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(variables))


def test_full_width_cifar10_parameter_counts(capsys):
  from lpaae_jax.configs import cifar10
  config = cifar10.get_config()
  spec = ModelSpec.from_config(config)
  states = jax.eval_shape(lambda key: init_states(spec, make_optimizers(config), key),
                          jax.random.key(0))
  counts = {name: sum(x.size for x in jax.tree_util.tree_leaves(getattr(states, name).params))
            for name in ("encoder", "decoder", "code_generator", "image_discriminator",
                         "code_discriminator")}
  with capsys.disabled():
    print("\nFull-width CIFAR-10 parameter counts (w=64, code_dim=64):")
    for name, count in counts.items():
      print(f"  {name:22s} {count:>12,d}")
    print(f"  {'total':22s} {sum(counts.values()):>12,d}")
  # D_C: 64*1000+1000 + 1000*500+500 + 500*200+200 + 200+1 (closed form of DESIGN's MLP).
  assert counts["code_discriminator"] == 64 * 1000 + 1000 + 1000 * 500 + 500 + 500 * 200 + 200 + 201
  # CG: Dense(64->128) + BN(128) + Dense(128->64) + BN(64).
  assert counts["code_generator"] == 64 * 128 + 128 + 2 * 128 + 128 * 64 + 64 + 2 * 64
  assert counts["encoder"] > 1_000_000 and counts["decoder"] > 1_000_000

  # Supervised, D_C judges [code; one-hot label] (the label tie): 10 more inputs.
  supervised = cifar10.get_config("supervised")
  supervised_states = jax.eval_shape(
      lambda key: init_states(ModelSpec.from_config(supervised), make_optimizers(supervised),
                              key), jax.random.key(0))
  first_layer = supervised_states.code_discriminator.params["Dense_0"]["kernel"]
  assert first_layer.shape == (64 + 10, 1000)


@pytest.mark.parametrize("size", [4, 8])
def test_sub_pixel_conv_transpose_matches_flax_conv_transpose(size):
  """The CPU backend's TransposedConv: same params, outputs and gradients as
  nn.ConvTranspose(F, (4, 4), (2, 2), SAME)."""
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(1), (2, size, size, 3))
  reference = nn.ConvTranspose(5, (4, 4), strides=(2, 2), padding="SAME")
  conv_transpose = backend.Backend(cpu=True).conv_transpose
  sub_pixel = models.TransposedConv(5, conv_transpose=conv_transpose)
  params = reference.init(jax.random.key(2), x)
  # Same parameter shapes and, from the same key, the same initial values.
  assert (jax.tree_util.tree_map(jnp.shape, sub_pixel.init(jax.random.key(2), x)) ==
          jax.tree_util.tree_map(jnp.shape, params))
  np.testing.assert_array_equal(sub_pixel.init(jax.random.key(2), x)["params"]["kernel"],
                                params["params"]["kernel"])
  # Random bias so its gradient and broadcast are exercised too (init is zeros).
  params = jax.tree_util.tree_map(
      lambda p: jax.random.normal(jax.random.key(3), p.shape), params)
  cotangent = jax.random.normal(jax.random.key(4), (2, 2 * size, 2 * size, 5))

  def value_and_grads(module):
    loss = lambda params, x: jnp.sum(module.apply(params, x) * cotangent)
    return jax.jit(lambda params, x: (module.apply(params, x),
                                      jax.grad(loss, argnums=(0, 1))(params, x)))

  expected = value_and_grads(reference)(params, x)
  actual = value_and_grads(sub_pixel)(params, x)
  assert actual[0].shape == (2, 2 * size, 2 * size, 5)
  jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5),
                         actual, expected)
  # The input gradient is the transposed conv's own, one stride-2 conv (cpu/conv.py).
  input_grad = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(sub_pixel.apply(params, x))))(x)
  assert "window_strides=(2, 2)" in str(input_grad)

  # bfloat16 compute (float32 params): loose agreement with the float32 reference.
  bf16 = models.TransposedConv(5, dtype=jnp.bfloat16, conv_transpose=conv_transpose)
  actual_bf16 = value_and_grads(bf16)(params, x)
  assert actual_bf16[0].dtype == jnp.bfloat16
  jax.tree_util.tree_map(
      lambda a, e: np.testing.assert_allclose(np.asarray(a, np.float32), e, rtol=0.05,
                                              atol=0.05 * float(np.max(np.abs(e)))),
      actual_bf16, expected)


def test_skip_resampling_equals_flax_pooling_and_jax_resize():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 6, 3)), jnp.float32)
  np.testing.assert_allclose(models.mean_pool_2x2(x), nn.avg_pool(x, (2, 2), strides=(2, 2)),
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(models.upsample_nearest_2x(x),
                                jax.image.resize(x, (2, 16, 12, 3), "nearest"))


class _ProjectAfterUpsampling(models.ResBlock):
  """The up block as first written: the skip upsampled, then projected (same parameters)."""

  @nn.compact
  def __call__(self, x):
    h = nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME",
                         name="ConvTranspose_0")(x)
    h = nn.Conv(self.features, (3, 3), padding="SAME")(nn.relu(h))
    batch, height, width, channels = x.shape
    skip = jax.image.resize(x, (batch, 2 * height, 2 * width, channels), "nearest")
    return nn.relu(h + nn.Conv(self.features, (1, 1), padding="SAME")(skip))


def test_up_block_projects_its_skip_before_upsampling_with_the_same_function():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 4, 4, 6)), jnp.float32)
  cpu = backend.Backend(cpu=True)
  block = models.ResBlock(5, "up", conv=cpu.conv, conv_transpose=cpu.conv_transpose)
  variables = block.init(jax.random.key(0), x)
  loss = lambda module: lambda v: jnp.sum(jnp.sin(module.apply(v, x)))
  first = _ProjectAfterUpsampling(5, "up")
  np.testing.assert_allclose(block.apply(variables, x), first.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  for ours, theirs in zip(jax.tree_util.tree_leaves(jax.grad(loss(block))(variables)),
                          jax.tree_util.tree_leaves(jax.grad(loss(first))(variables))):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_encoder_takes_the_cpu_formulations_and_matches_lax():
  """The encoder's first conv (1 image channel) takes cpu/conv.py's thin conv and its 1x1 skip
  projections the matmul kernel gradient; its parameter gradients equal those of plain
  nn.Conv throughout. BatchNorm uses its running statistics here: normalising a batch of
  two in training mode would amplify the thin conv's float32 reassociation (1e-7 of the
  first layer's output) a thousandfold into the gradients."""
  spec = ModelSpec(channels=1, width=8, code_dim=16)
  fast, plain = (dataclasses.replace(spec, backend=backend.Backend(cpu=on)).encoder()
                 for on in (True, False))
  images = _mnist_batch_padded(batch=2)
  variables = fast.init(jax.random.key(0), images, train=False)
  forward = lambda encoder: str(jax.make_jaxpr(
      lambda x: encoder.apply(variables, x, train=False))(images))
  assert forward(fast).count("custom_vjp_call") == 1 + 3  # the first conv, three projections
  assert "custom_vjp_call" not in forward(plain)

  def parameter_gradients(encoder):
    def loss(params):
      return jnp.sum(jnp.sin(encoder.apply({**variables, "params": params}, images,
                                           train=False)))
    return jax.jit(jax.grad(loss))(variables["params"])

  ours, theirs = parameter_gradients(fast), parameter_gradients(plain)
  for (path, got), expected in zip(jax.tree_util.tree_flatten_with_path(ours)[0],
                                   jax.tree_util.tree_leaves(theirs)):
    scale = float(jnp.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale,
                               err_msg=jax.tree_util.keystr(path))


def test_fast_paths_switch_keeps_every_parameter_and_the_decoders_function():
  """config.fast_paths chooses how the networks compute, in one place (ModelSpec): "auto"
  is "cpu" on this CPU backend; "xla" builds plain Flax layers (nn.ConvTranspose in the
  decoder). Parameter names and shapes are the same both ways, so checkpoints load either
  way, and the decoder computes the same function."""
  def spec_of(fast_paths):
    config = test_config.get_config()
    config.fast_paths = fast_paths
    return ModelSpec.from_config(config)
  assert spec_of("auto").backend.cpu == (jax.default_backend() == "cpu")
  fast, plain = spec_of("cpu"), spec_of("xla")
  assert fast.backend.cpu and not plain.backend.cpu
  optimizers = make_optimizers(test_config.get_config())

  def parameter_table(spec):
    shapes = jax.eval_shape(lambda key: init_states(spec, optimizers, key), jax.random.key(0))
    return [(jax.tree_util.keystr(path), leaf.shape, leaf.dtype)
            for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]]
  table = parameter_table(fast)
  assert any("ConvTranspose_0" in path for path, _, _ in table)
  assert table == parameter_table(plain)

  codes = jax.random.normal(jax.random.key(1), (3, fast.code_dim))
  variables = fast.decoder().init(jax.random.key(2), codes, train=False)
  jaxpr = lambda spec: str(jax.make_jaxpr(
      lambda z: spec.decoder().apply(variables, z, train=False))(codes))
  # nn.ConvTranspose is a convolution of the 2x-dilated input; the sub-pixel form has none.
  assert "lhs_dilation=(2, 2)" in jaxpr(plain) and "lhs_dilation=(2, 2)" not in jaxpr(fast)
  outputs = [np.asarray(jax.jit(lambda z, d=spec.decoder(): d.apply(variables, z, train=False))(
      codes)) for spec in (fast, plain)]
  np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def test_checkpoint_metadata_ignores_the_fast_paths(tmp_path):
  from lpaae_jax import checkpointing  # pylint: disable=g-import-not-at-top
  trained, restoring = test_config.get_config(), test_config.get_config()
  trained.fast_paths, restoring.fast_paths = "cpu", "xla"
  checkpointing.check_compatible(checkpointing.run_metadata(trained, 5), restoring,
                                 str(tmp_path))  # no CheckpointMismatchError
  restoring.model.width = 8  # while a real model difference still is one
  with pytest.raises(checkpointing.CheckpointMismatchError, match="model.width"):
    checkpointing.check_compatible(checkpointing.run_metadata(trained, 5), restoring,
                                   str(tmp_path))


def test_a_checkpoint_of_a_retired_option_names_the_commit_that_has_it(tmp_path):
  from lpaae_jax import checkpointing  # pylint: disable=g-import-not-at-top
  config = test_config.get_config("supervised")
  meta = checkpointing.run_metadata(config, 5)
  meta["model_spec"].update(label_tie="both", image_disc_norm="batch", image_disc_width=0)
  checkpointing.check_compatible(meta, config, str(tmp_path))  # what every run had before
  meta["model_spec"]["label_tie"] = "q_real"
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match=r"model.label_tie='q_real', an option retired after commit 2b0a9d1"):
    checkpointing.check_compatible(meta, config, str(tmp_path))


def test_fast_paths_rejects_unknown_values():
  config = test_config.get_config()
  config.fast_paths = "gpu"
  with pytest.raises(ValueError, match="fast_paths.*auto, cpu, xla"):
    ModelSpec.from_config(config)


def test_learning_rate_scales_set_each_networks_step_size():
  """Adam's first step moves every parameter by its learning rate (the update is
  lr * g / |g|), so each network's first update shows the rate it was given."""
  config = test_config.get_config()
  config.optim.learning_rate = 1e-3
  config.optim.learning_rate_scales.image_discriminator = 0.25
  config.optim.learning_rate_scales.code_generator = 2.0
  optimizers = make_optimizers(config)
  gradient = {"w": jnp.full((3,), -5.0)}
  for network, expected in [("encoder", 1e-3), ("decoder", 1e-3), ("code_discriminator", 1e-3),
                            ("image_discriminator", 2.5e-4), ("code_generator", 2e-3)]:
    tx = getattr(optimizers, network)
    update, _ = tx.update(gradient, tx.init(gradient))
    np.testing.assert_allclose(update["w"], expected, rtol=1e-4, err_msg=network)
  # Equal settings give the same optax objects (a TrainState's static `tx`), so a config
  # with the scales at 1 compiles the same steps as one without the field.
  plain = test_config.get_config()
  without = test_config.get_config()
  del without.optim["learning_rate_scales"]
  assert make_optimizers(plain) == make_optimizers(without)


@pytest.mark.parametrize("cpu", [False, True])
def test_resize_conv_is_nearest_upsampling_then_a_3x3_conv(cpu):
  """Same outputs and gradients (params and input) as upsample_nearest_2x + nn.Conv 3x3
  SAME with the same parameters, computed as one transposed conv."""
  x = jax.random.normal(jax.random.key(1), (2, 4, 6, 3))
  resize_conv = models.ResizeConv(5, conv_transpose=backend.Backend(cpu=cpu).conv_transpose)
  reference = nn.Conv(5, (3, 3), padding="SAME")
  params = resize_conv.init(jax.random.key(2), x)
  assert (jax.tree_util.tree_map(jnp.shape, params) ==
          jax.tree_util.tree_map(jnp.shape, reference.init(jax.random.key(2), x)))
  params = jax.tree_util.tree_map(lambda p: jax.random.normal(jax.random.key(3), p.shape),
                                  params)
  cotangent = jax.random.normal(jax.random.key(4), (2, 8, 12, 5))
  ours = lambda p, x: resize_conv.apply(p, x)
  theirs = lambda p, x: reference.apply(p, models.upsample_nearest_2x(x))
  np.testing.assert_allclose(ours(params, x), theirs(params, x), rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda p, x: jnp.sum(f(p, x) * cotangent), argnums=(0, 1))(params, x)
           for f in (ours, theirs)]
  jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4),
                         *grads)


def test_resize_conv_decoder_has_no_checkerboard_at_initialisation():
  """A constant input map gives a constant output map away from the borders (both output
  phases sum the same taps); the transposed conv's phases differ."""
  x = jnp.ones((1, 4, 4, 3))
  for module, flat in ((models.ResizeConv(2), True),
                       (nn.ConvTranspose(2, (4, 4), strides=(2, 2), padding="SAME"), False)):
    y = module.apply(module.init(jax.random.key(0), x), x)[0, 2:6, 2:6]
    assert bool(jnp.allclose(y, y[0, 0], atol=1e-5)) == flat


def test_image_discriminator_normalises_each_batch_by_its_own_statistics():
  """In training mode an image's logit depends on the rest of its batch (the table's
  BatchNorm)."""
  disc = models.ImageDiscriminator(4, 10, hidden=8)
  images = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  variables = disc.init(jax.random.key(1), images, train=False)
  logits = lambda x: disc.apply(variables, x, train=True, mutable=["batch_stats"])[0][0]
  alone = logits(images[:2])[0]
  with_others = logits(jnp.concatenate([images[:1], 3 * images[1:]]))[0]
  assert not bool(jnp.allclose(alone, with_others, atol=1e-5))


def test_decoder_block_norm_adds_batch_norm_inside_the_blocks():
  codes = jnp.zeros((2, 8))
  plain = models.Decoder(4, 3).init(jax.random.key(0), codes, train=False)
  normed = models.Decoder(4, 3, block_norm="batch").init(jax.random.key(0), codes,
                                                         train=False)
  assert "ResBlock_0" not in plain["batch_stats"]
  assert set(normed["batch_stats"]["ResBlock_0"]) == {"BatchNorm_0", "BatchNorm_1"}


@pytest.mark.parametrize("run, fast_paths", [("transposed_cpu", "xla"),
                                             ("resize_conv_xla", "cpu")])
def test_checkpoints_from_before_the_backend_field_restore_with_the_same_outputs(
    run, fast_paths, tmp_path):
  """Checkpoints written by the code before the networks took their convolution as a field
  (tests/data/make_checkpoint_before_backend.py) restore under the other backend and give
  the reconstructions and samples that code computed."""
  import shutil  # pylint: disable=g-import-not-at-top
  import lpaae_jax  # pylint: disable=g-import-not-at-top
  from lpaae_jax import checkpointing  # pylint: disable=g-import-not-at-top
  from tests.data import make_checkpoint_before_backend as before  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / run  # a copy: restoring must not touch the committed files
  shutil.copytree(os.path.join(before.OUT, run), workdir)
  upsampling, decoder_norm, _ = before.RUNS[run]
  config = before.config_of(upsampling, decoder_norm, fast_paths)
  states, step = checkpointing.restore(checkpointing.create_manager(str(workdir), config),
                                       config)
  assert step == 1 and states.spec.backend.cpu == (fast_paths == "cpu")
  images, key = before.inputs()
  expected = np.load(os.path.join(before.OUT, f"{run}_outputs.npz"))
  np.testing.assert_allclose(lpaae_jax.reconstruct(states, images),
                             expected["reconstructions"], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(lpaae_jax.sample(states, key, 4, s=np.arange(4)),
                             expected["samples"], rtol=1e-4, atol=1e-4)
