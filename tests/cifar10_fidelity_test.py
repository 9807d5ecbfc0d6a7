"""The CIFAR-10 fidelity experiments: every variant is a valid config, and the yardsticks'
steps train exactly their networks."""

import functools

from flax import traverse_util
import jax
import numpy as np
import pytest

import lpaae_jax
from experiments.cifar10_fidelity import run as fidelity_run
from experiments.cifar10_fidelity import yardsticks
from lpaae_jax import config_validation
from tests.helpers import leaves_equal, random_batch, tiny_config, to_host

_SETTINGS = dict(steps=10, width=4, num_samples=20, inception=False, judge_path="judge",
                 stats_cache_dir="stats", data_dir=None)


@pytest.mark.parametrize("variant", sorted(fidelity_run.VARIANTS))
def test_every_variant_is_a_valid_config(variant):
  config = fidelity_run.variant_config(variant, 0, **_SETTINGS)
  config_validation.validate_config(config)
  setting, overrides, _ = fidelity_run.VARIANTS[variant]
  assert config.model.condition == setting.split(",")[0]
  flat = config.to_dict()
  for dotted, value in overrides.items():  # the variant's changes are what it trains
    node = flat
    for part in dotted.split("."):
      node = node[part]
    assert node == (list(value) if isinstance(value, tuple) else value), dotted


def test_paper_table_rows_train_the_model_before_and_cifar10_rows_the_config():
  from lpaae_jax.configs import cifar10_cpu  # pylint: disable=g-import-not-at-top
  flat = lambda config: traverse_util.flatten_dict(config.to_dict(), sep=".")
  before = flat(fidelity_run.variant_config("paper_table", 0, **_SETTINGS))
  ours = flat(fidelity_run.variant_config("cifar10_supervised", 0, **_SETTINGS))
  config = flat(cifar10_cpu.get_config("supervised"))
  assert fidelity_run.cifar10_defaults()  # configs/cifar10.py has a model of its own
  for field, value in fidelity_run.PAPER_TABLE.items():
    assert before[field] == value and ours[field] == config[field], field


@pytest.mark.parametrize("name,updated", [
    ("gan", {"decoder", "image_discriminator"}),
    ("autoencoder", {"encoder", "decoder"}),
])
def test_yardstick_steps_update_exactly_their_networks(name, updated):
  config = tiny_config("none", "fixed")
  step = jax.jit(functools.partial(yardsticks.gan_step, gan_loss="non_saturating")
                 if name == "gan" else yardsticks.autoencoder_step)
  states = lpaae_jax.create_states(config, jax.random.key(0))
  batch = random_batch()
  losses = []
  for iteration in range(8):
    before = to_host(states)
    states, metrics = step(states, batch, jax.random.key(iteration))
    losses.append(float(metrics.get("pixel_loss", 0.0)))
    assert all(np.isfinite(float(value)) for value in metrics.values())
    after = to_host(states)
    for network in ("encoder", "decoder", "image_discriminator", "code_discriminator"):
      same = leaves_equal(getattr(before, network).params, getattr(after, network).params)
      assert same == (network not in updated), (name, network)
  if name == "autoencoder":  # one batch, eight steps: the pixel loss falls
    assert losses[-1] < losses[0]
