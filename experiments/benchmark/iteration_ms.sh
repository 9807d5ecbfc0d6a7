# Shared by the alternating A/B scripts (source it; run from the repository root).
# ours_ms MODULE [ARGS...] WIDTH DATASET: `python -m MODULE ARGS` (lpaae_jax.benchmark or a
#   wrapper of it) on configs/DATASET.py:supervised at WIDTH, median of 5 iterations -> "ms
#   malloc" (the malloc the process ran with, provenance.malloc_library).
# torch_ms WIDTH DATASET: PyTorch eager's (torch_reference.py, $TORCH_PYTHON) -> ms, or "-".
ours_ms() {
  local dataset=${*: -1} width=${*: -2:1} json; json=$(mktemp)
  python -m "${@:1:$#-2}" --config="configs/$dataset.py:supervised" \
    --config.model.width="$width" --repeats=5 --loop_steps=0 --json="$json" > /dev/null 2>&1
  python -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['phases']['iteration']['ms']), r['environment']['malloc'])" "$json"
  rm -f "$json"
}
torch_ms() {
  [ -n "${TORCH_PYTHON:-}" ] || { echo "-"; return; }
  "$TORCH_PYTHON" experiments/benchmark/torch_reference.py --dataset="$2" --width="$1" \
    --repeats=5 | python -c "import json,sys; print(round(json.load(sys.stdin)['ms']['iteration']))"
}
