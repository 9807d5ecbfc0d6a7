"""Train states: one Flax TrainState (with batch_stats) per separately-optimised network.

The autoencoder is two TrainStates, `encoder` and `decoder`, each with its own Adam: the
decoder is updated in both phases while the encoder is fixed in the prior-improvement
phase, and one Adam over both would move the fixed encoder by its stale moments
(DESIGN §3 invariants). With the fixed prior there is no code generator (`None`).
"""

import dataclasses
import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct
from flax.training import train_state

from lpaae_jax import config_validation
from lpaae_jax import models


class TrainState(train_state.TrainState):
  batch_stats: Any = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Static description of the model: everything traced code needs from the config.

  Hashable, so it can live in the (static part of the) states pytree and be bound into
  jitted functions; built once from a ConfigDict by `ModelSpec.from_config`.
  """
  condition: str = "none"
  prior: str = "learned"
  image_size: int = 32
  channels: int = 3
  width: int = 64
  code_dim: int = 64
  noise_dim: int = 64
  num_classes: int = 10
  disc_hidden: int = 1000
  code_disc_hidden: tuple[int, ...] = (1000, 500, 200)
  bn_momentum: float = 0.9
  label_tie: str = "none"
  compute_dtype: str = "float32"
  # XLA:CPU formulations of the same functions (config.fast_paths; see fast_paths_on_cpu).
  cpu_fast_paths: bool = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "ModelSpec":
    config_validation.validate_model_config(config)
    model = config.model
    return cls(condition=model.condition, prior=model.prior, image_size=model.image_size,
               channels=model.channels, width=model.width, code_dim=model.code_dim,
               noise_dim=model.noise_dim, num_classes=model.num_classes,
               disc_hidden=model.disc_hidden,
               code_disc_hidden=tuple(model.code_disc_hidden),
               bn_momentum=model.bn_momentum,
               # The tie only exists in the supervised setting (the others have no labels).
               label_tie=model.label_tie if model.condition == "supervised" else "none",
               compute_dtype=config.compute_dtype,
               cpu_fast_paths=cpu_fast_paths(config.get("fast_paths", "auto")))

  @property
  def conditional(self) -> bool:
    return self.condition != "none"

  @property
  def learned_prior(self) -> bool:
    return self.prior == "learned"

  @property
  def label_conditioned_code_discriminator(self) -> bool:
    """Supervised with the code tie: D_C judges [code; one-hot label] (DESIGN §2 (a))."""
    return self.condition == "supervised" and self.label_tie in ("code_discriminator", "both")

  @property
  def q_on_real_images(self) -> bool:
    """Supervised with the Q tie: Q also learns the labels of real images (DESIGN §2 (b))."""
    return self.condition == "supervised" and self.label_tie in ("q_real", "both")

  @property
  def code_discriminator_input_size(self) -> int:
    return self.code_dim + (self.num_classes if self.label_conditioned_code_discriminator
                            else 0)

  @property
  def noise_size(self) -> int:
    """Dimension of the noise z of the prior (DESIGN §2)."""
    if self.learned_prior:
      return self.noise_dim
    return self.code_dim - self.num_classes if self.conditional else self.code_dim

  @property
  def dtype(self):
    return jnp.dtype(self.compute_dtype)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, self.channels)

  # One place builds each network, for every dataset. Cached: TrainState.apply_fn is a
  # static (compared) field and bound methods compare their module by identity, so equal
  # specs must hand out the same module object or every new States would recompile.
  @functools.cache
  def encoder(self) -> models.Encoder:
    return models.Encoder(self.width, self.code_dim, self.image_size, self.bn_momentum,
                          self.dtype, self.cpu_fast_paths)

  @functools.cache
  def decoder(self) -> models.Decoder:
    return models.Decoder(self.width, self.channels, self.image_size, self.bn_momentum,
                          self.dtype, self.cpu_fast_paths)

  @functools.cache
  def code_generator(self) -> models.CodeGenerator:
    return models.CodeGenerator(self.noise_dim, self.code_dim, self.bn_momentum, self.dtype)

  @functools.cache
  def image_discriminator(self) -> models.ImageDiscriminator:
    return models.ImageDiscriminator(self.width, self.num_classes, self.disc_hidden,
                                     self.bn_momentum, self.dtype, self.cpu_fast_paths)

  @functools.cache
  def code_discriminator(self) -> models.CodeDiscriminator:
    return models.CodeDiscriminator(self.code_disc_hidden, self.dtype)


@struct.dataclass
class States:
  """Every network's TrainState; `spec` is static (not a pytree leaf)."""
  encoder: TrainState
  decoder: TrainState
  image_discriminator: TrainState
  code_discriminator: TrainState
  code_generator: Optional[TrainState]
  spec: ModelSpec = struct.field(pytree_node=False)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return _adam(float(config.optim.learning_rate), float(config.optim.b1), float(config.optim.b2))


@functools.lru_cache(maxsize=None)
def _adam(learning_rate: float, b1: float, b2: float) -> optax.GradientTransformation:
  # One instance per setting: `tx` is a static field of TrainState, so equal settings must
  # give an equal object, or every new/restored States would recompile the steps.
  return optax.adam(learning_rate, b1=b1, b2=b2)


def _init_state(module: nn.Module, key, example_input, tx) -> TrainState:
  variables = module.init(key, example_input, train=False)
  return TrainState.create(apply_fn=module.apply, params=variables["params"], tx=tx,
                           batch_stats=variables.get("batch_stats", {}))


def init_states(spec: ModelSpec, tx: optax.GradientTransformation, key) -> States:
  """Initialises every network (traceable: `create_states` jits it, or eval_shape it)."""
  keys = dict(zip(("encoder", "decoder", "image_discriminator", "code_discriminator",
                   "code_generator"), jax.random.split(key, 5)))
  images = jnp.zeros((1,) + spec.image_shape, jnp.float32)
  codes = jnp.zeros((1, spec.code_dim), jnp.float32)
  code_disc_inputs = jnp.zeros((1, spec.code_discriminator_input_size), jnp.float32)
  code_generator = None
  if spec.learned_prior:
    cg_inputs = jnp.zeros((1, spec.noise_dim + (spec.num_classes if spec.conditional else 0)))
    code_generator = _init_state(spec.code_generator(), keys["code_generator"], cg_inputs, tx)
  return States(
      encoder=_init_state(spec.encoder(), keys["encoder"], images, tx),
      decoder=_init_state(spec.decoder(), keys["decoder"], codes, tx),
      image_discriminator=_init_state(spec.image_discriminator(), keys["image_discriminator"],
                                      images, tx),
      code_discriminator=_init_state(spec.code_discriminator(), keys["code_discriminator"],
                                     code_disc_inputs, tx),
      code_generator=code_generator,
      spec=spec)


def create_states(config: ml_collections.ConfigDict, key, sharding=None) -> States:
  """Builds and initialises all states for `config` (validated first).

  `sharding` (e.g. a replicated NamedSharding over a mesh) places every state array.
  """
  spec = ModelSpec.from_config(config)
  return _jitted_init(spec, make_optimizer(config), sharding)(key)


@functools.lru_cache(maxsize=None)
def _jitted_init(spec: ModelSpec, tx: optax.GradientTransformation, sharding):
  """Shape first (as big_vision does): `jax.eval_shape` gives every state's shape without
  computing anything, each array gets its sharding from it, and init is jitted with those
  `out_shardings`, so every device materialises only its own part of each array. Cached:
  equal settings share one trace and compilation."""
  init = functools.partial(init_states, spec, tx)
  shapes = jax.eval_shape(init, jax.random.key(0))
  return jax.jit(init, out_shardings=state_shardings(shapes, sharding),
                 compiler_options=_init_compiler_options(spec.cpu_fast_paths))


def state_shardings(shapes: States, sharding=None):
  """The sharding of each state array: `sharding` for all (the data-parallel mesh
  replicates every state); None leaves placement to jit (the default device)."""
  if sharding is None:
    return None
  return jax.tree_util.tree_map(lambda _: sharding, shapes)


def cpu_fast_paths(fast_paths: str) -> bool:
  """config.fast_paths -> whether to use the XLA:CPU formulations; the one place that reads
  the switch and the backend. "cpu": conv.py's matmul kernel gradients, sub-pixel
  transposed convs, unrolled fused iterations and a cheap compile of the initialisation,
  each measured faster on XLA:CPU (experiments/README.md); "xla": plain Flax layers and
  XLA's defaults; "auto": "cpu" on the CPU backend, "xla" on GPUs and TPUs."""
  if fast_paths == "auto":
    return jax.default_backend() == "cpu"
  return fast_paths == "cpu"


def _init_compiler_options(cpu_fast_paths_on: bool) -> Optional[dict[str, Any]]:
  # Initialisation runs once but its RNG-heavy graph takes XLA:CPU ~5x longer to compile
  # at full optimisation than it takes to run; skip the expensive passes there.
  if cpu_fast_paths_on:
    return {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
  return None
