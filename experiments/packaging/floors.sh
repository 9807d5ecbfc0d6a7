#!/usr/bin/env bash
# pyproject.toml's floors, installed together: a short training and the suite's cheap tests.
#   experiments/packaging/floors.sh [PYTHON]   (default: python3.11; ~5 min, ~1.5 GB download)
# Needs LPAAE_DATA_DIR (a TFDS data_dir with mnist). Results: experiments/packaging/README.md.
set -euo pipefail
PYTHON=${1:-python3.11}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
python3 -m venv "$WORK/tool" && "$WORK/tool/bin/pip" install -q uv
UV="$WORK/tool/bin/uv"
# The lowest release of every direct dependency that resolves; transitive ones the newest,
# as pip would pick them for a user installing the floors today.
"$UV" pip compile "$ROOT/pyproject.toml" --resolution lowest-direct -q -o "$WORK/floors.txt" \
    --python "$PYTHON"
"$UV" venv -q "$WORK/venv" -p "$PYTHON"
VIRTUAL_ENV="$WORK/venv" "$UV" pip install -q -r "$WORK/floors.txt" pip setuptools \
    pytest==9.2.0 pytest-xdist==3.8.0
grep -E "^(absl-py|numpy|scipy|scikit-learn|matplotlib|pillow|tensorflow(-cpu|-datasets)?|tensorboard|etils|importlib-resources|ml-collections|jax|flax|protobuf)==" \
    <(VIRTUAL_ENV="$WORK/venv" "$UV" pip freeze)
cd "$ROOT"
"$WORK/venv/bin/python" -m lpaae_jax.main --config=configs/test.py --config.download=False \
    --workdir="$WORK/run"
"$WORK/venv/bin/python" -m pytest -q tests/packaging_test.py tests/cli_test.py \
    tests/losses_test.py tests/provenance_test.py tests/evaluation_test.py \
    tests/metrics_test.py tests/input_pipeline_test.py
echo "floors OK ($PYTHON); $WORK"
