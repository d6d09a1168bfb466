#!/usr/bin/env bash
# The adversarially trained purifiers of the shipped model set (needs the classifier).
set -euo pipefail
cd "$(dirname "$0")/.."
V="node bin/vqguard.mjs"
OUT=${MODELS_OUT:-models/mnist}
$V train purifier --split 1 --epochs 15 --seed 1 --adversarial-training --classifier "$OUT/classifier" --out "$OUT/purifier-split1-adv"
$V train purifier --split 2 --epochs 15 --seed 1 --adversarial-training --classifier "$OUT/classifier" --out "$OUT/purifier-split2-adv"
