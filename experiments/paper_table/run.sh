#!/usr/bin/env bash
# The paper's Inception-Score table at paper scale (six CIFAR-10 runs, width 64, batch 64,
# 100k iterations each, IS/FID from 50k samples) on one GPU or a Colab TPU. Unattended:
# rerun the same command after an interruption; finished runs are skipped.
# Needs the full pytorch-fid Inception release converted to .npz for the IS (see README).
# Usage: bash experiments/paper_table/run.sh [WORKDIR] [extra flags]
set -euo pipefail
workdir="${1:-runs/paper_table}"
shift || true
python -m experiments.paper_table.run --config=configs/cifar10.py --workdir="$workdir" \
  --results=experiments/paper_table/results "$@"
