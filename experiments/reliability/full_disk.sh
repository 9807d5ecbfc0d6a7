#!/usr/bin/env bash
# A full disk during training, N times: each try must end with our one-line error and
# nothing after it. Needs root (a 20 MB tmpfs) and LPAAE_DATA_DIR (mnist); ~1.5 min a try.
#   experiments/reliability/full_disk.sh [N]        Results: experiments/reliability/README.md
set -uo pipefail
N=${1:-8}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DISK=$(mktemp -d) LOGS=$(mktemp -d)
mount -t tmpfs -o size=20m tmpfs "$DISK" || { echo "needs root: mount -t tmpfs"; exit 1; }
trap 'umount "$DISK"; rmdir "$DISK"' EXIT
cd "$ROOT"
for i in $(seq "$N"); do
  rm -rf "${DISK:?}"/*
  # 2 MB left: the first checkpoints (~0.5 MB each) fit, a later save or summary does not.
  dd if=/dev/zero of="$DISK/filler" bs=1M count=18 status=none
  python -m lpaae_jax.main --config=configs/test.py --config.download=False \
      --config.num_train_steps=200 --config.checkpoint_every_steps=10 \
      --workdir="$DISK/run" > /dev/null 2> "$LOGS/$i.err"
  rc=$?
  after=$(awk '/^error:/{found=1; next} found' "$LOGS/$i.err" | wc -l)
  echo "try $i: exit $rc, stderr $(wc -l < "$LOGS/$i.err") lines," \
       "$(grep -c Traceback "$LOGS/$i.err") tracebacks, $after after the error line;" \
       "last: $(tail -1 "$LOGS/$i.err" | cut -c1-100)"
done
echo "stderr of each try: $LOGS"
