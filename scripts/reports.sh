#!/usr/bin/env bash
# Regenerates the committed evaluation reports from the shipped models (models/mnist).
# Each report file records the command that produced it. Usage: scripts/reports.sh [paper|robustness|detection|all]
set -euo pipefail
cd "$(dirname "$0")/.."
V="node bin/vqguard.mjs"
what=${1:-all}
PIPES='full,split2,split2>full,full>split2,split4,split4>split2>full'
ROB='full,split2,split2>full,full>split2,adv:full,adv:split2,adv:split2>full'

if [[ $what == paper || $what == all ]]; then
  $V eval --samples 1000 --attack fgsm --eps 0,0.05,0.1,0.15,0.2,0.25,0.3 --pipelines "$PIPES" \
    --report reports/paper --name fig3-fgsm --title 'Fig. 3: accuracy under FGSM, epsilon 0..0.3'
  $V eval --samples 1000 --attack fgsm --eps 0,0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08 --pipelines "$PIPES" \
    --report reports/paper --name fig4-fgsm-small --title 'Fig. 4: accuracy under FGSM, epsilon 0..0.08'
  $V examples --pipelines 'full,split2,split2>full,full>split2,adv:full' --eps 0.1,0.2,0.3 --out reports/paper/examples.png
fi
if [[ $what == robustness || $what == all ]]; then
  $V eval --samples 1000 --attack fgsm --eps 0,0.1,0.2,0.3 --pipelines "$ROB" --report reports/robustness --name fgsm \
    --title 'FGSM (attack on the classifier), clean- vs adversarially trained purifiers'
  $V eval --samples 1000 --attack pgd --steps 40 --eps 0,0.1,0.2,0.3 --pipelines "$ROB" --report reports/robustness --name pgd \
    --title 'PGD-40 (attack on the classifier), clean- vs adversarially trained purifiers'
  $V eval --samples 200 --attack bpda --steps 20 --eps 0,0.1,0.2,0.3 --pipelines "$ROB" --report reports/robustness --name bpda \
    --title 'BPDA-20: adaptive PGD through purifier and classifier (straight-through quantiser)'
fi
if [[ $what == detection || $what == all ]]; then
  for p in 'split2>full' 'full' 'adv:split2>full'; do
    $V calibrate --pipeline "$p" --fpr 0.01
  done
  $V calibrate --pipeline bits1 --pipeline median2 --fpr 0.01
  for a in fgsm pgd; do
    $V detect-eval --pipeline 'split2>full' --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/split2-full"
    $V detect-eval --pipeline 'full' --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/full"
    $V detect-eval --pipeline 'adv:split2>full' --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/adv-split2-full"
    $V detect-eval --pipeline bits1 --pipeline median2 --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/feature-squeezing"
  done
fi
