#!/usr/bin/env bash
# Trains the shipped model set (models/mnist) with the project's own training command.
# Each bundle's model.json records the exact command, seed and training time.
set -euo pipefail
cd "$(dirname "$0")/.."
V="node bin/vqguard.mjs"
OUT=${MODELS_OUT:-models/mnist}
$V train classifier --epochs 20 --seed 1 --out "$OUT/classifier"
$V train purifier --split 1 --epochs 15 --seed 1 --out "$OUT/purifier-split1"
$V train purifier --split 2 --epochs 15 --seed 1 --out "$OUT/purifier-split2"
$V train purifier --split 4 --epochs 15 --seed 1 --out "$OUT/purifier-split4"
$V train purifier --split 1 --epochs 15 --seed 1 --adversarial-training --classifier "$OUT/classifier" --out "$OUT/purifier-split1-adv"
$V train purifier --split 2 --epochs 15 --seed 1 --adversarial-training --classifier "$OUT/classifier" --out "$OUT/purifier-split2-adv"
