#!/usr/bin/env bash
# The positive control end to end, from the repository root; every step resumes (training
# checkpoints, the judge store) or is skipped when its output exists. Seeds 0 first, so a
# stopped run leaves L vs I paired on seed 0 judged before seed 1 trains.
#   bash docs/results/positive-control/run.sh
set -euo pipefail
here=docs/results/positive-control
models=results-store/positive-control
mkdir -p "$models"
gguf() {  # the float32-q/v GGUF of a folder, once
  [ -f "$models/$2.gguf" ] || python "$here/stage_gguf.py" "$1" "$models/$2.gguf"
}
base_folder=$(python -c "from numbias.models import resolve; from numbias.weights import dequantised; print(dequantised(resolve('gemma3-270m-base')))")
gguf "$base_folder" base
for seed in 0 1; do
  for arm in leaning informed; do
    numbias train "$here/recipe-$arm.yaml" --stage sft --seed "$seed"
    stage="pc-$arm-sft-s$seed"
    gguf "$(python -c "from numbias.models import trained_stage; print(trained_stage('$stage').path)")" "$stage"
  done
  python "$here/judge.py" --seeds "$seed"
done
