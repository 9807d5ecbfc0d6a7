"""Writes tests/data/checkpoint_before_backend/: checkpoints of the tiny config made by the
code before the networks took their convolution as a field (lpaae_jax/backend.py), with
the outputs that code computed from them. Made at commit 29f7260 with

  python tests/data/make_checkpoint_before_backend.py

tests/models_test.py restores them with the code as it is and compares."""

import os

import jax
import numpy as np

import lpaae_jax
from lpaae_jax import checkpointing
from lpaae_jax.configs import test as test_config

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoint_before_backend")
# The decoder's two upsamplings (their parameters are named differently), both backends.
RUNS = {"transposed_cpu": ("transposed", "none", "cpu"),
        "resize_conv_xla": ("resize_conv", "batch", "xla")}


def config_of(upsampling: str, decoder_norm: str, fast_paths: str):
  config = test_config.get_config("supervised,learned")
  config.model.upsampling, config.model.decoder_norm = upsampling, decoder_norm
  config.fast_paths = fast_paths
  return config


def inputs():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, size=(4, 32, 32, 1)).astype(np.float32)
  return images, jax.random.key(3)


def main():
  images, key = inputs()
  for name, fields in RUNS.items():
    config = config_of(*fields)
    states = lpaae_jax.create_states(config, jax.random.key(0))
    workdir = os.path.join(OUT, name)
    manager = checkpointing.create_manager(workdir, config)
    checkpointing.save(manager, 1, states, config)
    checkpointing.wait_until_saved(manager)
    np.savez(os.path.join(OUT, f"{name}_outputs.npz"),
             reconstructions=np.asarray(lpaae_jax.reconstruct(states, images)),
             samples=np.asarray(lpaae_jax.sample(states, key, 4, s=np.arange(4))))


if __name__ == "__main__":
  main()
