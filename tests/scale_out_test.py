"""Scaling out: a data-parallel mesh matches one device, bfloat16 compute tracks float32,
and iterations fused with steps_per_jit match single steps.

(Batch sizes not divisible by the device count are covered in train_test.py.)
"""

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lpaae_jax
from lpaae_jax import distributed
from lpaae_jax import train
from lpaae_jax import train_steps
from tests.helpers import (BATCH_STATS_ATOL, NETWORKS, ROOT, STATE_ATOL, STATE_RTOL,
                           assert_states_close, compiled_steps, random_batch, state_drift,
                           subprocess_xla_flags, tiny_config, to_host)

NUM_DEVICES = 8
ITERATIONS = 2
# Tolerances of the 8-device run against the 1-device one (measured values are printed).
# Not bit-exact: reductions over the batch are split over devices (see the test's
# docstring). The first step's losses differ by reassociation only (measured rel 1.7e-7):
# with a per-device BatchNorm they would differ by ~1e-2. After it, Adam amplifies the
# ~1e-7 gradient differences: its first updates are ~lr * sign(g), so entries whose
# gradient is ~0 -- e.g. a bias feeding straight into a BatchNorm, exactly zero in exact
# arithmetic -- move by +-lr depending on rounding. Measured after 2 iterations (CPU,
# jax 0.10.2): params max abs diff 1.07e-3 = 5.4 lr (decoder, updated 4 times), 9.5% of
# param entries outside rtol 1e-4/atol 1e-5, BatchNorm running stats max abs 9.6e-4,
# later-step losses rel 6.3e-3 at most.
MESH_RTOL, MESH_ATOL = STATE_RTOL, STATE_ATOL  # only count "outside" entries and excesses
FIRST_STEP_LOSS_RTOL = 1e-5
LATER_STEP_LOSS_RTOL = 3e-2
PARAM_MAX_ABS_IN_LR = 8.0  # <= ~2 lr per update, 4 updates of the decoder
PARAM_MAX_OUTSIDE_FRACTION = 0.25

# Runs in a fresh interpreter: the host-platform device count must be set before JAX starts.
_MESH_SCRIPT = textwrap.dedent(f"""
    import sys
    import json
    import jax
    import numpy as np
    import lpaae_jax
    from jax.sharding import PartitionSpec
    from lpaae_jax import train_steps
    from lpaae_jax.train import create_mesh_shardings, stack_batches
    from tests.helpers import random_batch, tiny_config, to_host

    def measure(fast_paths):
      assert jax.device_count() == {NUM_DEVICES}, jax.devices()
      config = tiny_config("supervised", fast_paths=fast_paths)
      assert config.batch_size == 16
      per_device = config.batch_size // {NUM_DEVICES}
      state_sharding, batch_sharding = create_mesh_shardings(config)
      runs, history = {{}}, {{}}
      for name, shardings in (("mesh", (state_sharding, batch_sharding)), ("single", None)):
        if shardings is None:
          states = lpaae_jax.create_states(config, jax.random.key(0))
          steps = lpaae_jax.make_train_steps(config)
        else:
          states = lpaae_jax.create_states(config, jax.random.key(0), state_sharding)
          steps = lpaae_jax.make_train_steps(config, state_sharding=state_sharding,
                                             batch_sharding=batch_sharding)
        history[name] = []
        for iteration in range({ITERATIONS}):
          batch = random_batch(iteration)
          if shardings is not None:
            batch = jax.device_put(batch, batch_sharding)
            image = batch["image"]
            assert image.sharding == batch_sharding, image.sharding
            assert len(image.addressable_shards) == {NUM_DEVICES}
            assert len({{s.device for s in image.addressable_shards}}) == {NUM_DEVICES}
            assert all(s.data.shape[0] == per_device for s in image.addressable_shards), (
                [s.data.shape for s in image.addressable_shards])
          for phase, step in zip(("aae", "prior"), (steps.aae_phase, steps.prior_phase)):
            states, metrics = step(states, batch, jax.random.key(10 * iteration + len(phase)))
            if shardings is not None:
              for leaf in jax.tree_util.tree_leaves(states):
                assert leaf.sharding.is_fully_replicated, (phase, leaf.sharding)
                assert len(leaf.sharding.device_set) == {NUM_DEVICES}, leaf.sharding
            metrics = jax.device_get(metrics)
            assert all(np.isfinite(v) for v in metrics.values()), metrics
            history[name].append(metrics)
        runs[name] = to_host(states)

      # Shape-first init with out_shardings: every state starts replicated on the mesh.
      states = lpaae_jax.create_states(config, jax.random.key(0), state_sharding)
      assert all(leaf.sharding == state_sharding for leaf in jax.tree_util.tree_leaves(states))
      # steps_per_jit: {ITERATIONS} iterations in one call; stacked batches split on axis 1.
      multi_step = lpaae_jax.make_train_steps(config, state_sharding=state_sharding,
                                              batch_sharding=batch_sharding).iterations
      stacked_sharding = train_steps.stacked_sharding(batch_sharding)
      assert stacked_sharding.spec == PartitionSpec(None, "data"), stacked_sharding
      stacked = jax.make_array_from_process_local_data(
          stacked_sharding, stack_batches([jax.device_get(random_batch(i))
                                           for i in range({ITERATIONS})]))
      shards = stacked["image"].addressable_shards
      assert len({{s.device for s in shards}}) == {NUM_DEVICES}
      assert all(s.data.shape == ({ITERATIONS}, per_device, 32, 32, 1) for s in shards), (
          [s.data.shape for s in shards])
      states, fused_metrics = multi_step(states, stacked, jax.random.key(1), 0)
      for leaf in jax.tree_util.tree_leaves(states):
        assert leaf.sharding.is_fully_replicated, ("fused", leaf.sharding)
        assert len(leaf.sharding.device_set) == {NUM_DEVICES}, leaf.sharding
      for key, value in fused_metrics.items():
        assert value.shape == ({ITERATIONS},) and value.sharding.is_fully_replicated, (key, value)
        assert np.all(np.isfinite(jax.device_get(value))), (key, value)

      # cpu/conv.py's matmul kernel gradient (the 1x1 projections') with the batch split over the
      # mesh: a sum across devices, replicated like the parameters.
      import jax.numpy as jnp
      from jax import lax
      from lpaae_jax.cpu import conv as conv_lib
      rng = np.random.default_rng(0)
      x = jax.device_put(rng.normal(size=(16, 16, 16, 4)).astype(np.float32), batch_sharding)
      w = jax.device_put(rng.normal(size=(1, 1, 4, 32)).astype(np.float32), state_sharding)
      assert conv_lib.matmul_kernel_gradient_is_faster(x.shape, w.shape, (1, 1), ((0, 0),) * 2)
      def conv_loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w, (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))))
      expected = jax.jit(jax.grad(conv_loss(lax.conv_general_dilated), (0, 1)))(x, w)
      got = jax.jit(jax.grad(conv_loss(conv_lib.conv_general_dilated), (0, 1)))(x, w)
      assert got[0].sharding.is_equivalent_to(x.sharding, x.ndim), got[0].sharding
      assert got[1].sharding.is_fully_replicated, got[1].sharding
      for a, b in zip(got, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)

      def excess(x, y):  # max of |x - y| - (atol + rtol |y|): <= 0 means allclose
        return float((np.abs(x - y) - ({MESH_ATOL} + {MESH_RTOL} * np.abs(y))).max())

      out = {{"metrics_excess": -1.0, "batch_stats_excess": -1.0, "batch_stats_max_abs": 0.0,
              "param_max_abs": 0.0, "param_outside": 0, "param_total": 0, "worst_param": ""}}
      for index, (m8, m1) in enumerate(zip(history["mesh"], history["single"])):
        assert m8.keys() == m1.keys()
        for key in m8:
          rel = float(abs(m8[key] - m1[key]) / max(abs(m1[key]), 1e-3))
          out.setdefault("metrics_rel_by_step", [0.0] * len(history["mesh"]))
          out["metrics_rel_by_step"][index] = max(out["metrics_rel_by_step"][index], rel)
          if excess(m8[key], m1[key]) > out["metrics_excess"]:
            out["metrics_excess"] = excess(m8[key], m1[key])
            out["worst_metric"] = f"step {{index}} {{key}}: {{m8[key]}} vs {{m1[key]}}"
      for network in {NETWORKS!r}:
        a, b = getattr(runs["mesh"], network), getattr(runs["single"], network)
        if b is None:
          continue
        for x, y in zip(jax.tree_util.tree_leaves(a.batch_stats),
                        jax.tree_util.tree_leaves(b.batch_stats)):
          out["batch_stats_excess"] = max(out["batch_stats_excess"], excess(x, y))
          out["batch_stats_max_abs"] = max(out["batch_stats_max_abs"],
                                           float(np.abs(x - y).max()))
        for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a.params)[0],
                                jax.tree_util.tree_leaves(b.params)):
          diff = np.abs(x - y)
          out["param_outside"] += int((diff > {MESH_ATOL} + {MESH_RTOL} * np.abs(y)).sum())
          out["param_total"] += int(diff.size)
          if diff.max() > out["param_max_abs"]:
            out["param_max_abs"] = float(diff.max())
            out["worst_param"] = network + jax.tree_util.keystr(path)
      out["learning_rate"] = float(config.optim.learning_rate)
      print(json.dumps(out))

    for fast_paths in sys.argv[1].split(","):
      measure(fast_paths)
    """)


def test_eight_device_mesh_matches_one_device():
  """BatchNorm statistics are over the global batch, as on one device; single and fused
  steps run on the mesh. On the "xla" path (XLA's own layers and the rolled lax.scan), what
  GPUs and TPUs run data-parallel (until 2026-12-08 it also ran the CPU formulations; they
  left it to keep CI within 10 minutes).

  Not bit-exact: under the mesh the batch reductions (BatchNorm moments, loss means,
  gradient sums over the batch) are split into per-device partial sums combined by an
  all-reduce, a different float summation order than one device's.
  """
  env = dict(os.environ,
             XLA_FLAGS=subprocess_xla_flags(NUM_DEVICES),
             JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  # JAX_COMPILATION_CACHE_DIR (set by conftest) is inherited, so compiles are cached.
  result = subprocess.run([sys.executable, "-c", _MESH_SCRIPT, "xla"], env=env,
                          cwd=str(ROOT), capture_output=True, text=True, timeout=600,
                          check=False)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
  lines = result.stdout.strip().splitlines()[-1:]
  for fast_paths, line in zip(("xla",), lines):
    measured = json.loads(line)
    print(f"\n8-device vs 1-device after {ITERATIONS} iterations ({fast_paths}): {measured}")
    first, *later = measured["metrics_rel_by_step"]
    # Global-batch BatchNorm: identical first-step losses (per-device: ~1e-2 off).
    assert first <= FIRST_STEP_LOSS_RTOL, (fast_paths, measured)
    assert max(later) <= LATER_STEP_LOSS_RTOL, (fast_paths, measured)
    assert measured["batch_stats_max_abs"] <= BATCH_STATS_ATOL, (fast_paths, measured)
    assert (measured["param_max_abs"]
            <= PARAM_MAX_ABS_IN_LR * measured["learning_rate"]), (fast_paths, measured)
    assert (measured["param_outside"]
            <= PARAM_MAX_OUTSIDE_FRACTION * measured["param_total"]), (fast_paths, measured)


# bf16 vs f32 losses over 3 iterations: measured max relative difference 0.022 with the CPU
# formulations, 0.015 with XLA's own layers (a prior/generator_rec_loss; CPU, jax 0.10.2,
# 2026-12-07); the bound leaves headroom.
BF16_LOSS_RTOL = 0.1


def _run(compute_dtype, fast_paths="auto", iterations=3):
  config = tiny_config("supervised", compute_dtype=compute_dtype, fast_paths=fast_paths)
  steps = compiled_steps("supervised", compute_dtype=compute_dtype, fast_paths=fast_paths)
  aae_step, prior_step = steps.aae_phase, steps.prior_phase
  states = lpaae_jax.create_states(config, jax.random.key(0))  # fresh: the steps donate
  history = []
  for iteration in range(iterations):
    batch = random_batch(iteration)
    for phase, step in (("aae", aae_step), ("prior", prior_step)):
      states, metrics = step(states, batch, jax.random.key(10 * iteration + len(phase)))
      history.append(jax.device_get(metrics))
  return to_host(states), history


@pytest.mark.parametrize("fast_paths", ["auto", "xla"])
def test_bfloat16_compute_tracks_float32(fast_paths):
  # One float32 reference (the paths compute the same function: models_test, conv_test).
  states32, history32 = _run("float32")
  states16, history16 = _run("bfloat16", fast_paths)
  assert states16.spec.compute_dtype == "bfloat16"
  for network in NETWORKS:
    for leaf in jax.tree_util.tree_leaves(getattr(states16, network).params):
      assert leaf.dtype == np.float32, (network, leaf.dtype)
  worst = (0.0, None)
  for index, (m32, m16) in enumerate(zip(history32, history16)):
    assert m32.keys() == m16.keys()
    for key in m16:
      assert np.isfinite(m16[key]), f"bf16 step {index}: {key} = {m16[key]}"
      if not key.endswith("loss"):
        continue
      rel = abs(float(m16[key]) - float(m32[key])) / max(abs(float(m32[key])), 1e-3)
      if rel > worst[0]:
        worst = (rel, f"step {index} {key}: f32 {float(m32[key]):.5f} "
                      f"bf16 {float(m16[key]):.5f}")
  print(f"\nbf16 vs f32 ({fast_paths}) max relative loss difference: {worst[0]:.4f} "
        f"({worst[1]})")
  assert worst[0] <= BF16_LOSS_RTOL, worst


# ---------------------------------------------------------------- steps_per_jit (lax.scan)

FUSED_STEPS = 4
# Fused (4 iterations over 4 stacked batches in one jitted call) vs 4 single-step calls:
# the same operations, but not bit-identical on XLA:CPU. XLA optimises a graph holding
# several steps in another context than a step alone -- layout assignment and fusion pick
# other convolution/dot forms -- so float sums associate differently. (Measured: scanned,
# unrolled, and unrolled with optimisation barriers between the phases all differ from the
# single steps by the same order, 1e-2 abs in parameters after 4 iterations; the in-graph
# keys and sliced batches do not matter.) The first iteration's AAE-phase losses, computed
# before any update, agree exactly (measured 0.0). After that, as on the mesh above, Adam's
# sign-like early updates turn ~1e-7 gradient differences into +-lr moves of
# near-zero-gradient entries (biases feeding a BatchNorm), and the GAN amplifies them.
# Measured after 4 iterations (CPU, jax 0.10.2, tiny config, unrolled as on CPU): losses
# rel 2.4e-3 to 3.8e-3, params max abs diff 4.1 lr (an image-discriminator conv bias, 4
# updates), 17% of param entries outside rtol 1e-4/atol 1e-5, BatchNorm running stats max
# abs 8.0e-4; the training loop with steps_per_jit=4 against step by step (train_test.py):
# 2.2 lr, 2.5%, 1.1e-4. (The rolled lax.scan measured 1.2e-2, 6.0 lr, 29%.) The bounds
# leave headroom. The wiring (keys, phase order, metrics, skips) is checked bit-exactly
# with toy steps in test_fused_iterations_are_wired_like_the_loop.
FUSED_FIRST_AAE_LOSS_RTOL = 1e-6
FUSED_LOSS_RTOL = 3e-2
# FUSED_PARAM_MAX_ABS_IN_LR, FUSED_PARAM_MAX_OUTSIDE_FRACTION and BATCH_STATS_ATOL live in
# tests/helpers.py (assert_states_close), shared with the training loop's test.

def compare_runs(fused_states, single_states, fused_metrics, single_metrics, learning_rate):
  """state_drift plus the per-iteration largest relative loss differences."""
  out = {"loss_rel_by_step": []}
  for index, single in enumerate(single_metrics):
    rel = {key: abs(float(fused_metrics[key][index]) - float(value)) /
           max(abs(float(value)), 1e-3) for key, value in single.items()}
    out["loss_rel_by_step"].append(max(rel.values()))
    if index == 0:  # before any update: only the forward/backward numerics differ
      out["first_aae_rel"] = max(v for k, v in rel.items() if k.startswith("aae/"))
  out.update(state_drift(fused_states, single_states, learning_rate))
  return out


def assert_close_runs(measured):
  assert measured["first_aae_rel"] <= FUSED_FIRST_AAE_LOSS_RTOL, measured
  assert max(measured["loss_rel_by_step"]) <= FUSED_LOSS_RTOL, measured
  assert_states_close(measured)


def test_steps_per_jit_equals_single_steps():
  """config.steps_per_jit=4's fused call == 4 single calls with the loop's keys."""
  config = tiny_config()  # the loop test's config: one compilation serves both
  train_key, first_step = jax.random.key(7), 3
  batches = [random_batch(i) for i in range(FUSED_STEPS)]
  steps = compiled_steps()
  aae_step, prior_step = steps.aae_phase, steps.prior_phase
  states = lpaae_jax.create_states(config, jax.random.key(0))
  single_metrics = []
  for offset, batch in enumerate(batches):
    aae_key, prior_key = train_steps.iteration_keys(train_key, first_step + offset)
    states, aae_metrics = aae_step(states, batch, aae_key)
    states, prior_metrics = prior_step(states, batch, prior_key)
    single_metrics.append(jax.device_get({**aae_metrics, **prior_metrics}))
  single_states = to_host(states)

  multi_step = steps.iterations
  assert multi_step is lpaae_jax.make_train_steps(tiny_config()).iterations  # shared compile
  # States and batches placed as the training loop places them (on its 1-device mesh), so
  # the loop test reuses this compilation.
  state_sharding, batch_sharding = train.create_mesh_shardings(config)
  stacked = jax.make_array_from_process_local_data(
      train_steps.stacked_sharding(batch_sharding),
      train.stack_batches([jax.device_get(b) for b in batches]))
  states = lpaae_jax.create_states(config, jax.random.key(0), state_sharding)
  states, fused_metrics = multi_step(states, stacked, train_key, first_step)
  fused_metrics = jax.device_get(fused_metrics)
  assert fused_metrics.keys() == single_metrics[0].keys()
  assert all(v.shape == (FUSED_STEPS,) for v in fused_metrics.values())
  measured = compare_runs(to_host(states), single_states, fused_metrics, single_metrics,
                          float(config.optim.learning_rate))
  print(f"\nsteps_per_jit={FUSED_STEPS} vs {FUSED_STEPS} single steps: {measured}")
  assert_close_runs(measured)


@pytest.mark.parametrize("unroll", [False, True])  # rolled on GPU/TPU, unrolled on CPU
def test_fused_iterations_are_wired_like_the_loop(unroll):
  """Bit-exact on toy steps whose ops cannot reassociate: the same keys per iteration and
  phase, the phases in order, the metrics stacked per iteration, and skip mode dropping
  exactly the non-finite iterations."""
  def toy_phase(name, scale):
    def step(states, batch, key):
      noise = jax.random.uniform(key, states["params"].shape)
      params = states["params"] * scale + noise + batch["image"].sum(axis=0)
      return ({"params": params, "step": states["step"] + 1},
              {f"{name}/loss": batch["loss"] + noise[0], f"{name}/key_bits":
               jax.random.bits(key).astype(jnp.float32)})
    return train_steps.skip_if_nonfinite(step, name)

  aae_step, prior_step = toy_phase("aae", 0.5), toy_phase("prior", 2.0)
  train_key, first_step = jax.random.key(3), 5
  batches = [{"image": np.full((2, 3), i, np.float32), "loss": np.float32(l)}
             for i, l in enumerate([1.0, np.nan, 2.0])]
  states = {"params": jnp.arange(3, dtype=jnp.float32), "step": jnp.zeros((), jnp.int32)}
  single_steps = [jax.jit(aae_step), jax.jit(prior_step)]
  expected, expected_metrics = states, []
  for offset, batch in enumerate(batches):
    keys = train_steps.iteration_keys(train_key, first_step + offset)
    metrics = {}
    for step, key in zip(single_steps, keys):
      expected, step_metrics = step(expected, batch, key)
      metrics.update(step_metrics)
    expected_metrics.append(jax.device_get(metrics))
  fused = jax.jit(functools.partial(train_steps.run_iterations, aae_step, prior_step,
                                    unroll=unroll))
  stacked = {key: np.stack([b[key] for b in batches]) for key in batches[0]}
  got, got_metrics = fused(states, stacked, train_key, first_step)
  np.testing.assert_array_equal(got["params"], expected["params"])
  assert int(got["step"]) == int(expected["step"]) == 4  # the NaN iteration was skipped
  for key in expected_metrics[0]:
    np.testing.assert_array_equal(got_metrics[key], [m[key] for m in expected_metrics],
                                  err_msg=key)
  np.testing.assert_array_equal(got_metrics["aae/skipped"], [0, 1, 0])
  model_step = lpaae_jax.make_train_steps(tiny_config()).iterations
  with pytest.raises(ValueError, match=r"\(k, B, H, W, C\)"):  # an unstacked batch
    model_step(lpaae_jax.create_states(tiny_config(), jax.random.key(0)), random_batch(),
               train_key, first_step)


# ------------------------------------------------------------------------------ multi-host

@pytest.mark.parametrize("mode,environ,expected", [
    ("auto", {}, False),  # a laptop, one GPU box, a Colab TPU: no coordinator to wait for
    ("auto", {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2",
              "JAX_PROCESS_ID": "1"}, True),
    ("auto", {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "2",
              "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, True),
    ("auto", {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node1", "SLURM_NTASKS": "1",
              "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, False),
    ("auto", {"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "4"},
     True),
    ("auto", {"TPU_WORKER_HOSTNAMES": "t1k-0,t1k-1,t1k-2,t1k-3"}, True),  # a GKE TPU pod
    ("auto", {"TPU_WORKER_HOSTNAMES": "localhost"}, False),  # a single-host TPU VM
    ("auto", {"MEGASCALE_NUM_SLICES": "2"}, True),
    ("on", {}, True),  # e.g. a GCE TPU pod, which JAX finds through its metadata server
    ("off", {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, False),
])
def test_multihost_initialises_when_the_environment_says_so(mode, environ, expected):
  assert distributed.should_initialize_distributed(mode, environ) is expected


def test_multihost_arguments_and_bad_mode():
  assert distributed.distributed_arguments(
      {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}) == {"num_processes": 2,
                                                            "process_id": 1}
  assert distributed.distributed_arguments({}) == {}
  with pytest.raises(ValueError, match="--multihost='yes' is invalid: allowed: auto, on, off"):
    distributed.should_initialize_distributed("yes", {})


NUM_PROCESSES = 2
GLOBAL_BATCH = 8
# Each process: initialise through the training command's decision (env as a user would set it), take its
# own rows of the global batch from the input pipeline, build the global array with
# make_array_from_process_local_data, and report per-example checksums of the whole batch.
_PROCESS_SCRIPT = textwrap.dedent(f"""
    import json
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    from lpaae_jax import distributed, input_pipeline, train

    assert distributed.initialize_distributed("auto")
    assert jax.process_count() == {NUM_PROCESSES}, jax.process_count()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 64).astype(np.int32)
    local = next(input_pipeline.batches_from_arrays(
        images, labels, batch_size={GLOBAL_BATCH}, seed=0, start_step=3,
        process_index=jax.process_index(), process_count=jax.process_count()))
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    batch = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("data")),
                                                   local)
    assert batch["image"].shape == ({GLOBAL_BATCH}, 32, 32, 1), batch["image"].shape
    checksums = jax.jit(lambda b: b["image"].sum(axis=(1, 2, 3)) + 1000.0 * b["label"],
                        out_shardings=NamedSharding(mesh, PartitionSpec()))(batch)
    print(json.dumps({{"process": jax.process_index(),
                      "checksums": np.asarray(checksums).tolist()}}))
    """)


def test_two_processes_feed_their_slices_of_one_global_batch():
  """A real 2-process JAX cluster on this machine's CPU (coordinator on localhost)."""
  import socket  # pylint: disable=g-import-not-at-top
  from lpaae_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    port = probe.getsockname()[1]
  processes = []
  for process_id in range(NUM_PROCESSES):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
               JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
               JAX_NUM_PROCESSES=str(NUM_PROCESSES), JAX_PROCESS_ID=str(process_id))
    env["XLA_FLAGS"] = subprocess_xla_flags()  # one CPU device per process
    processes.append(subprocess.Popen([sys.executable, "-c", _PROCESS_SCRIPT], env=env,
                                      cwd=str(ROOT), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
  outputs = [process.communicate(timeout=240) for process in processes]
  for process, (stdout, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stdout[-2000:] + stderr[-4000:]
  reports = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
  # The same global batch in one process.
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, 64).astype(np.int32)
  whole = next(input_pipeline.batches_from_arrays(images, labels, batch_size=GLOBAL_BATCH,
                                                  seed=0, start_step=3))
  expected = whole["image"].sum(axis=(1, 2, 3)) + 1000.0 * whole["label"]
  assert sorted(r["process"] for r in reports) == list(range(NUM_PROCESSES))
  for report in reports:
    np.testing.assert_allclose(report["checksums"], expected, rtol=1e-6)


# Each process trains the tiny config on mock data in one 2-process cluster; process 1 gets
# SIGTERM (a preemption notice) before its step 4.
_PREEMPTION_SCRIPT = textwrap.dedent("""
    import os
    import signal
    import sys
    import jax
    import tensorflow_datasets as tfds
    from lpaae_jax import distributed, train
    from tests.helpers import run_config

    assert distributed.initialize_distributed("auto")
    workdir, data_dir = sys.argv[1], sys.argv[2]
    config = run_config(data_dir, num_train_steps=1000, log_every_steps=1,
                        checkpoint_every_steps=1000, eval_every_steps=1000)
    if jax.process_index() == 1:
      next_batches = train.next_batches

      def preempted(train_iter, num_steps, config, first_step):
        if first_step == 3:
          os.kill(os.getpid(), signal.SIGTERM)
        return next_batches(train_iter, num_steps, config, first_step)
      train.next_batches = preempted
    with tfds.testing.mock_data(num_examples=64):
      states = train.train_and_evaluate(config, workdir)
    print("stopped after step", int(states.encoder.step))
    """)


def test_sigterm_on_one_host_saves_every_host_at_the_same_step(tmp_path):
  """Preemption of one host of a 2-process cluster: all hosts stop at one step, save it
  together and exit cleanly (a per-host flag would leave them waiting in the save)."""
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    port = probe.getsockname()[1]
  processes = []
  for process_id in range(NUM_PROCESSES):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
               JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
               JAX_NUM_PROCESSES=str(NUM_PROCESSES), JAX_PROCESS_ID=str(process_id))
    env["XLA_FLAGS"] = subprocess_xla_flags()  # one CPU device per process
    processes.append(subprocess.Popen(
        [sys.executable, "-c", _PREEMPTION_SCRIPT, str(tmp_path / "run"),
         str(tmp_path / "data")], env=env, cwd=str(ROOT), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  try:
    outputs = [process.communicate(timeout=400) for process in processes]
  finally:  # a host left waiting in a collective must not outlive the test
    for process in processes:
      process.kill()
  stops = []
  for process, (stdout, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stdout[-2000:] + stderr[-4000:]
    assert "A host was preempted: every host saves step" in stderr, stderr[-4000:]
    stops.append(int(stdout.strip().splitlines()[-1].rsplit(" ", 1)[1]))
  saved = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert stops[0] == stops[1] and saved == stops[:1] and 4 <= saved[0] < 1000, (stops, saved)
