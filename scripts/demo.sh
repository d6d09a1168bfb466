#!/usr/bin/env bash
# The main job on the embedded default: native backend check, then a local Kafka broker,
# 2,000 sample records (half attacked with FGSM eps 0.1) through the guard with the shipped
# models, and a summary (demo-output/summary.json). Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
node bin/vqguard.mjs doctor
echo
node bin/vqguard.mjs demo --count "${DEMO_COUNT:-2000}" --adversarial-ratio 0.5 --attack fgsm --eps "${DEMO_EPS:-0.1}" --out demo-output 2> >(grep -v '"level":40' >&2)
