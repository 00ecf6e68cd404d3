#!/usr/bin/env bash
# The positive control end to end, from the repository root, with numbias and its
# training extras installed; every step resumes (training checkpoints, the judge store)
# or is skipped when its output exists. Seed 0 of both arms is trained and judged before
# seed 1, so a stopped run leaves L vs I on seed 0.
#   bash docs/results/positive-control/run.sh
set -euo pipefail
here=docs/results/positive-control
models=results-store/positive-control
mkdir -p "$models"
gguf() {  # the float32-q/v GGUF of a folder, once
  [ -f "$models/$2.gguf" ] || python "$here/stage_gguf.py" "$1" "$models/$2.gguf"
}
gguf "$(python -c "from numbias.models.catalog import resolve; from numbias.models.weights import dequantised
print(dequantised(resolve('gemma3-270m-base')))")" base
judged=()
for seed in 0 1; do
  for arm in leaning informed; do
    numbias train "$here/recipe-$arm.yaml" --stage sft --seed "$seed"
    stage="pc-$arm-sft-s$seed"
    gguf "$(python -c "from numbias.models.catalog import trained_stage; print(trained_stage('$stage').path)")" "$stage"
  done
  judged+=(--seeds "$seed")
  python "$here/judge.py" "${judged[@]}" --words 1000
done
python "$here/analyse.py"
