#!/usr/bin/env bash
# XLA:CPU flags against the default, CIFAR-10 w=16 batch 64 (steps only, no loop): prints
# each flag's iteration time. Usage: bash experiments/benchmark/xla_flags.sh > experiments/benchmark/xla_flags_cpu.txt
set -uo pipefail
cd "$(dirname "$0")/../.."
echo "# bash experiments/benchmark/xla_flags.sh (CIFAR-10 w=16, batch 64, $(python -c 'import jax; print(jax.default_backend(), "jax", jax.__version__)' 2>/dev/null)). Columns as the"
echo "# benchmark's table: phase, ms, images/s, compile s, GFLOP, GFLOP/s, roofline (vs that run's matmul)."
for flag in "" --xla_cpu_use_onednn=true --xla_cpu_use_xnnpack=true \
    --xla_cpu_enable_fast_math=true \
    --xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION \
    --xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION \
    --xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION \
    --xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY \
    --xla_cpu_enable_concurrency_optimized_scheduler=true \
    --xla_cpu_use_multi_output_fusion=true \
    --xla_cpu_disable_new_fusion_emitters=true \
    --xla_cpu_use_fusion_emitters=false \
    --xla_cpu_enable_fast_min_max=true \
    --xla_cpu_prefer_vector_width=256; do
  line=$(XLA_FLAGS="$flag" python -m lpaae_jax.benchmark --config=configs/cifar10.py \
           --config.model.width=16 --config.batch_size=64 --repeats=5 --loop_steps=0 \
           2>/dev/null | grep "^iteration")
  echo "${flag:-(default)}: ${line:-failed}"
done
