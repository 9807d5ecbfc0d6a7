"""Train states: one Flax TrainState (with batch_stats) per separately-optimised network,
their optimizer, and their (jitted, shape-first) initialisation.

The autoencoder is two TrainStates, `encoder` and `decoder`, each with its own Adam: the
decoder is updated in both phases while the encoder is fixed in the prior-improvement
phase, and one Adam over both would move the fixed encoder by its stale moments
(DESIGN §3 invariants). With the fixed prior there is no code generator (`None`). The
networks themselves are built by `models.ModelSpec`.
"""

import functools
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct
from flax.training import train_state

from lpaae_jax.config_validation import NETWORKS
from lpaae_jax.models import ModelSpec


class TrainState(train_state.TrainState):
  batch_stats: Any = None


@struct.dataclass
class States:
  """Every network's TrainState; `spec` is static (not a pytree leaf)."""
  encoder: TrainState
  decoder: TrainState
  image_discriminator: TrainState
  code_discriminator: TrainState
  code_generator: Optional[TrainState]
  spec: ModelSpec = struct.field(pytree_node=False)


class Optimizers(NamedTuple):
  """Each network's optimizer (hashable: equal settings give equal tuples, see `adam`)."""
  encoder: optax.GradientTransformation
  decoder: optax.GradientTransformation
  image_discriminator: optax.GradientTransformation
  code_discriminator: optax.GradientTransformation
  code_generator: optax.GradientTransformation


def make_optimizers(config: ml_collections.ConfigDict) -> Optimizers:
  """Each network's Adam (config.optim): learning_rate times the network's
  `learning_rate_scales` entry (1 where a config predating the field has none)."""
  scales = config.optim.get("learning_rate_scales", {})
  return Optimizers(**{
      network: adam(float(config.optim.learning_rate) * float(scales.get(network, 1.0)),
                    float(config.optim.b1), float(config.optim.b2))
      for network in NETWORKS})


@functools.lru_cache(maxsize=None)
def adam(learning_rate: float, b1: float = 0.9,
         b2: float = 0.999) -> optax.GradientTransformation:
  """optax.adam, one instance per setting: `tx` is a static field of a TrainState, so
  equal settings must give an equal object, or every new or restored state would
  recompile the steps that take it."""
  return optax.adam(learning_rate, b1=b1, b2=b2)


def _init_state(module: nn.Module, key, example_input, tx) -> TrainState:
  variables = module.init(key, example_input, train=False)
  return TrainState.create(apply_fn=module.apply, params=variables["params"], tx=tx,
                           batch_stats=variables.get("batch_stats", {}))


def init_states(spec: ModelSpec, optimizers: Optimizers, key) -> States:
  """Initialises every network (traceable: `create_states` jits it, or eval_shape it)."""
  keys = dict(zip(NETWORKS, jax.random.split(key, len(NETWORKS))))
  images = jnp.zeros((1,) + spec.image_shape, jnp.float32)
  codes = jnp.zeros((1, spec.code_dim), jnp.float32)
  code_disc_inputs = jnp.zeros((1, spec.code_discriminator_input_size), jnp.float32)
  code_generator = None
  if spec.learned_prior:
    cg_inputs = jnp.zeros((1, spec.noise_dim + (spec.num_classes if spec.conditional else 0)))
    code_generator = _init_state(spec.code_generator(), keys["code_generator"], cg_inputs,
                                 optimizers.code_generator)
  return States(
      encoder=_init_state(spec.encoder(), keys["encoder"], images, optimizers.encoder),
      decoder=_init_state(spec.decoder(), keys["decoder"], codes, optimizers.decoder),
      image_discriminator=_init_state(spec.image_discriminator(), keys["image_discriminator"],
                                      images, optimizers.image_discriminator),
      code_discriminator=_init_state(spec.code_discriminator(), keys["code_discriminator"],
                                     code_disc_inputs, optimizers.code_discriminator),
      code_generator=code_generator,
      spec=spec)


def create_states(config: ml_collections.ConfigDict, key, sharding=None) -> States:
  """Builds and initialises all states for `config` (validated first).

  `sharding` (e.g. a replicated NamedSharding over a mesh) places every state array.
  """
  spec = ModelSpec.from_config(config)
  return _jitted_init(spec, make_optimizers(config), sharding)(key)


@functools.lru_cache(maxsize=None)
def _jitted_init(spec: ModelSpec, optimizers: Optimizers, sharding):
  """Shape first (as big_vision does): `jax.eval_shape` gives every state's shape without
  computing anything, each array gets its sharding from it, and init is jitted with those
  `out_shardings`, so every device materialises only its own part of each array. Cached:
  equal settings share one trace and compilation."""
  init = functools.partial(init_states, spec, optimizers)
  shapes = jax.eval_shape(init, jax.random.key(0))
  return jax.jit(init, out_shardings=state_shardings(shapes, sharding),
                 compiler_options=dict(spec.backend.init_compiler_options()) or None)


def state_shardings(shapes: States, sharding=None):
  """The sharding of each state array: `sharding` for all (the data-parallel mesh
  replicates every state); None leaves placement to jit (the default device)."""
  if sharding is None:
    return None
  return jax.tree_util.tree_map(lambda _: sharding, shapes)


