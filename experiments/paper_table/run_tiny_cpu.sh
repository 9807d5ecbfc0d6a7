#!/usr/bin/env bash
# The paper-table command end to end on a tiny CIFAR-10 model on CPU: proves the command
# works (six runs, FID, the table); its numbers mean nothing. Took 38.6 min on 2 cores
# shared with two test suites (mostly Inception on CPU and compiling six model variants).
# Usage: LPAAE_DATA_DIR=../shared/tfds LPAAE_INCEPTION_DIR=../shared/inception \
#          bash experiments/paper_table/run_tiny_cpu.sh [WORKDIR]
set -euo pipefail
workdir="${1:-runs/paper_table_tiny_cpu}"
python -m experiments.paper_table.run \
  --config=configs/cifar10.py \
  --config.model.width=4 --config.model.code_dim=16 --config.model.noise_dim=16 \
  --config.model.disc_hidden=32 --config.model.code_disc_hidden="(32, 32, 16)" \
  --config.batch_size=16 --config.num_train_steps=40 \
  --config.log_every_steps=20 --config.eval_every_steps=40 \
  --config.checkpoint_every_steps=20 \
  --config.eval.num_samples=500 --config.eval.num_real_samples=500 \
  --config.eval.batch_size=100 --config.eval.num_splits=5 --config.eval.num_tsne_points=200 \
  --config.eval.inception_weights="${LPAAE_INCEPTION_DIR:?set LPAAE_INCEPTION_DIR}/pt_inception-2015-12-05_fid_nofc.npz" \
  --workdir="$workdir" \
  --results=experiments/paper_table/results_tiny_cpu
