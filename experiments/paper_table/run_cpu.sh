#!/usr/bin/env bash
# The paper's CIFAR-10 table at CPU scale (configs/cifar10_cpu.py: width 16, 3,000
# iterations): the six runs on the real CIFAR-10 of $LPAAE_DATA_DIR, FID with the real
# Inception of $LPAAE_INCEPTION_DIR, the judge accuracies from a CIFAR-10 judge trained once
# on the real training split (2,000 steps, into WORKDIR/judge). Supervised runs first (their
# grids go into README), then image generation, then unsupervised. Unattended and resumable:
# rerun the same command after an interruption; finished runs are skipped, the results
# (experiments/paper_table/results_cpu) cover every finished run. Extra flags go to
# experiments.paper_table.run (e.g. --report_only, or --config.seed=1 with another WORKDIR
# and --results for a second seed).
# Usage: LPAAE_DATA_DIR=../shared/tfds LPAAE_INCEPTION_DIR=../shared/inception \
#          bash experiments/paper_table/run_cpu.sh [WORKDIR] [extra flags]
set -euo pipefail
workdir="${1:-runs/paper_table_cpu}"
shift || true
weights="${LPAAE_INCEPTION_DIR:?set LPAAE_INCEPTION_DIR}/pt_inception-2015-12-05_fid_nofc.npz"
if [[ ! -f "$workdir/judge/judge.json" ]]; then
  python -m lpaae_jax.evaluation.judge --config=configs/cifar10.py --steps=2000 \
    --out="$workdir/judge"
fi
python -m experiments.paper_table.run --config=configs/cifar10_cpu.py --workdir="$workdir" \
  --config.eval.inception_weights="$weights" --judge="$workdir/judge" \
  --runs=supervised_learned,supervised_fixed,none_learned,none_fixed,unsupervised_learned,unsupervised_fixed \
  --results=experiments/paper_table/results_cpu "$@"
