#!/usr/bin/env bash
# The paper's CIFAR-10 table at CPU scale over seeds 0, 1, 2 (issue 44): configs/cifar10_cpu.py
# (width 16, 3,000 iterations on the full 50k training split, FID from 2,000 samples), the
# 18 runs on the real CIFAR-10 of $LPAAE_DATA_DIR, FID with the real Inception of
# $LPAAE_INCEPTION_DIR, the judge accuracies from the committed CIFAR-10 judge
# (experiments/cifar10_fidelity/judge; its recipe trains it again only where it is missing).
# Seed by seed, and in each the supervised pair first, then image generation, then
# unsupervised: an interrupted study has complete learned/fixed pairs. Unattended and
# resumable across sessions: rerun the same command; finished runs are skipped (also when only
# the committed results.json records them), an interrupted one resumes from its checkpoint.
# Results: experiments/paper_table/results_cpu_seeds (results_cpu holds the older one-seed
# study of the model before configs/cifar10.py got its own; `git log` of this file has its
# command). 4 iterations per compiled call: the same training, as fast as the
# cifar10_fidelity runs the time estimate comes from. Extra flags go to
# experiments.paper_table.run (e.g. --report_only).
# Usage: LPAAE_DATA_DIR=../shared/tfds LPAAE_INCEPTION_DIR=../shared/inception \
#          bash experiments/paper_table/run_cpu.sh [WORKDIR] [extra flags]
set -euo pipefail
workdir="${1:-runs/paper_table_cpu_seeds}"
shift || true
weights="${LPAAE_INCEPTION_DIR:?set LPAAE_INCEPTION_DIR}/pt_inception-2015-12-05_fid_nofc.npz"
judge=experiments/cifar10_fidelity/judge
if [[ ! -f "$judge/judge.json" ]]; then
  python -c "from experiments.cifar10_fidelity import run; run.ensure_judge('$judge', None)"
fi
python -m experiments.paper_table.run --config=configs/cifar10_cpu.py --workdir="$workdir" \
  --config.eval.inception_weights="$weights" --config.steps_per_jit=4 --judge="$judge" \
  --runs=supervised_learned,supervised_fixed,none_learned,none_fixed,unsupervised_learned,unsupervised_fixed \
  --seeds=0,1,2 --results=experiments/paper_table/results_cpu_seeds "$@"
