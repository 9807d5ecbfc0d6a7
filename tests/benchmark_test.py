"""The benchmark end to end on the tiny config: every table field in the JSON, sane values."""

import json

import jax
import jax.numpy as jnp
import pytest

import lpaae_jax

from lpaae_jax import benchmark
from lpaae_jax import models
from lpaae_jax import states as states_lib
from lpaae_jax import train
from lpaae_jax import train_steps
from tests.helpers import compiled_steps, tiny_config

PHASE_FIELDS = ("ms", "images_per_sec", "compile_s", "gflops", "executed_gflops",
                "achieved_gflops_per_sec", "roofline_fraction")
ENVIRONMENT_FIELDS = ("device_kind", "backend", "num_devices", "jax_version", "dataset",
                      "condition", "prior", "width", "batch_size", "compute_dtype", "fast_paths",
                      "compiler_options", "malloc")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  """One short run (2 repeats, 3 loop steps logged every step): JSON and printed table."""
  path = tmp_path_factory.mktemp("benchmark") / "results.json"
  printed = []
  benchmark.run_and_report(tiny_config(), str(path), print_fn=printed.append, repeats=2,
                           warmup=1, loop_steps=3, loop_log_every=1)
  return json.loads(path.read_text()), printed[0]


def test_uses_the_suites_compiled_steps():
  # On one device the benchmark asks for the same jitted steps as the other tests (and
  # the training loop), so their compilations are shared.
  if jax.device_count() > 1:
    pytest.skip("multi-device steps are sharded, unlike conftest's")
  assert train.make_loop_steps(tiny_config(), None, None) is compiled_steps()


def test_json_has_every_field(report):
  results, _ = report
  assert set(results["environment"]) >= set(ENVIRONMENT_FIELDS)
  assert results["environment"]["width"] == 4
  assert results["environment"]["batch_size"] == 16
  assert results["environment"]["compiler_options"] == dict(train_steps.step_compiler_options(
      models.ModelSpec.from_config(tiny_config()), 16))
  assert set(results["phases"]) == {"aae", "prior", "iteration"}
  for phase, row in results["phases"].items():
    assert set(row) >= set(PHASE_FIELDS), phase
  assert set(results["matmul"]) >= {"n", "dtype", "ms", "gflops_per_sec"}
  assert set(results["loop"]) >= {"steps", "images_per_sec", "pure_images_per_sec",
                                  "overhead"}
  assert set(results["memory"]) == {"peak_host_rss_mib", "peak_device_mib"}


def test_values_are_sane(report):
  results, _ = report
  for phase, row in results["phases"].items():
    for field in ("ms", "images_per_sec", "compile_s", "gflops", "executed_gflops",
                  "achieved_gflops_per_sec"):
      assert row[field] > 0, (phase, field, row[field])
    assert 0 < row["roofline_fraction"] <= 1.5, (phase, row["roofline_fraction"])
  phases = results["phases"]
  assert phases["iteration"]["gflops"] == pytest.approx(phases["aae"]["gflops"] +
                                                        phases["prior"]["gflops"])
  assert results["matmul"]["gflops_per_sec"] > 0
  loop = results["loop"]
  assert loop["steps"] == 3 and loop["intervals"] == 2
  assert loop["images_per_sec"] > 0
  assert loop["pure_images_per_sec"] == phases["iteration"]["images_per_sec"]
  assert loop["overhead"] == pytest.approx(1 - loop["images_per_sec"] /
                                           loop["pure_images_per_sec"])
  assert results["memory"]["peak_host_rss_mib"] > 0


def test_table_shows_every_measurement(report):
  _, table = report
  for text in ("aae", "prior", "iteration", "compile s", "GFLOP/s", "roofline", "matmul",
               "training loop", "overhead", "peak host RSS", "jax", "width 4", "batch 16"):
    assert text in table, text


@pytest.fixture(scope="module")
def fused_report(tmp_path_factory):
  """steps_per_jit=4: the fused call timed too; 8 loop steps logged every 4 (default)."""
  path = tmp_path_factory.mktemp("benchmark_fused") / "results.json"
  printed = []
  benchmark.run_and_report(tiny_config(steps_per_jit=4), str(path), print_fn=printed.append,
                           repeats=1, warmup=1, loop_steps=8)
  return json.loads(path.read_text()), printed[0]


def test_fused_call_is_measured_and_is_the_loops_reference(fused_report):
  results, table = fused_report
  assert results["steps_per_jit"] == 4
  phases = results["phases"]
  assert set(phases) == {"aae", "prior", "iteration", "fused"}
  fused = phases["fused"]
  assert set(fused) >= set(PHASE_FIELDS)
  for field in ("ms", "images_per_sec", "compile_s", "achieved_gflops_per_sec"):
    assert fused[field] > 0, (field, fused[field])
  assert fused["gflops"] == pytest.approx(phases["iteration"]["gflops"])  # per iteration
  assert fused["images_per_sec"] == pytest.approx(16 / (fused["ms"] / 1e3))
  loop = results["loop"]
  # Logged every 4 steps: only fused calls, the first interval (compilation) left out.
  assert loop["log_every"] == 4 and loop["intervals"] == 1
  assert loop["pure_images_per_sec"] == fused["images_per_sec"]
  assert "fused" in table and "steps_per_jit 4" in table


@pytest.mark.parametrize("loop_steps,steps_per_jit,expected", [
    (20, 1, 5), (200, 4, 48), (8, 4, 4), (3, 4, 4), (1, 1, 1)])
def test_default_loop_log_every_is_a_multiple_of_steps_per_jit(loop_steps, steps_per_jit,
                                                               expected):
  assert benchmark.default_loop_log_every(loop_steps, steps_per_jit) == expected


@pytest.mark.parametrize("analysis,expected", [
    ({"flops": 10.0, "bytes accessed": 3.0}, 10.0),
    ([{"flops": 4.0}, {"flops": 6.0}], 10.0),
    (None, None),
    ({"bytes accessed": 3.0}, None),
    ([], None),
])
def test_flops_of_handles_every_cost_analysis_shape(analysis, expected):

  class FakeCompiled:

    def cost_analysis(self):
      return analysis

  assert benchmark.flops_of(FakeCompiled()) == expected


def test_flops_of_survives_missing_cost_analysis():

  class NoAnalysis:

    def cost_analysis(self):
      raise NotImplementedError

  assert benchmark.flops_of(NoAnalysis()) is None


def test_side_by_side_table_gives_median_ratios_of_the_pairs_and_their_range():
  from experiments.benchmark import torch_side_by_side
  row = {"width": 8, "dataset": "mnist", "ours_ms": 200.0, "torch_ms": 180.0,
         "ratios": [0.8, 1.1, 0.9]}
  assert torch_side_by_side.table([row]).splitlines()[-1] == (
      "| 8 | mnist | 200 | 180 | 0.90x (0.80-1.10) |")
  fused = dict(row, ratios=[0.9], fused_ms=150.0, fused_ratios=[1.2])
  header, _, line = torch_side_by_side.table([fused]).splitlines()
  assert "fused call" in header and line.endswith("| 0.90x | 150 | 1.20x |")


def test_side_by_side_says_whose_malloc_keeps_freed_memory():
  from experiments.benchmark import torch_side_by_side  # pylint: disable=g-import-not-at-top
  sides = torch_side_by_side._malloc_sides  # pylint: disable=protected-access
  assert sides("system") == "system (both sides)"
  assert sides("system, freed memory kept") == (
      "system, freed memory kept (ours, cpu/malloc.py), "
      "system as it comes (PyTorch)")


def test_compiler_option_variants_on_top_of_ours_keep_ours_and_add_theirs():
  from experiments.benchmark import compiler_options  # pylint: disable=g-import-not-at-top
  ynn = "xla_cpu_experimental_ynn_fusion_type"
  ours = {ynn: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT", "xla_multiheap_size_constraint_per_heap": 7}
  assert compiler_options.variant_options("ours", ours) is ours
  assert compiler_options.variant_options("xla_defaults", ours) == {}
  assert compiler_options.variant_options("ynn_convs", ours) == {
      ynn: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
      "xla_multiheap_size_constraint_per_heap": 7}
  assert compiler_options.variant_options("ynn_convs", {}) == {
      ynn: "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}
  assert compiler_options.variant_options("concurrency_scheduler", ours) == {
      **ours, "xla_cpu_enable_concurrency_optimized_scheduler": True}
  assert ours == {ynn: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
                  "xla_multiheap_size_constraint_per_heap": 7}  # not modified


def test_model_flops_count_direct_convolutions_where_winograd_runs():
  """At width 16 the 4x4 level's 3x3 convs (128 channels) take cpu/conv.py's Winograd with the
  CPU fast paths, whose executable counts fewer FLOPs; the benchmark's count is the plain
  layers' either way (lowered only, nothing compiles)."""
  key = jax.random.key(0)
  batch = {"image": jnp.zeros((16, 32, 32, 1)), "label": jnp.zeros((16,), jnp.int32)}
  counts = {}
  for fast_paths in ("cpu", "xla"):
    config = tiny_config(**{"model.width": 16, "fast_paths": fast_paths})
    steps = lpaae_jax.make_train_steps(config)
    states = jax.eval_shape(lambda k, c=config: states_lib.init_states(
        models.ModelSpec.from_config(c), states_lib.make_optimizers(c), k), key)
    for phase, step in (("aae", steps.aae_phase), ("prior", steps.prior_phase)):
      counts[fast_paths, phase, "executed"] = benchmark.flops_of(step.lower(states, batch, key))
      counts[fast_paths, phase, "model"] = benchmark.model_flops(step, config, batch, key)
  for phase in ("aae", "prior"):
    direct = counts["xla", phase, "executed"]
    # Fewer multiplies (at batch 16 the kernel transforms eat much of the saving).
    assert counts["cpu", phase, "executed"] < direct, phase
    assert counts["cpu", phase, "model"] == counts["xla", phase, "model"] == direct, phase
