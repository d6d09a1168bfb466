#!/usr/bin/env bash
# Regenerates the committed evaluation reports from the shipped models (models/mnist).
# Each report file records the command that produced it. Usage: scripts/reports.sh [paper|paper24|sweep|robustness|detection|transfer|replay|all]
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
if [[ $what == paper24 || $what == all ]]; then
  # The paper's own setting: 24x24 inputs (its public code resizes MNIST to 24x24). Models in
  # models/mnist24 (trained by the commands in their model.json); side-by-side report from the stored runs.
  D=(--dataset 'mnist?size=24' --models models/mnist24)
  P24='full,split2,split2>full,full>split2'
  $V eval "${D[@]}" --samples 1000 --attack fgsm --eps 0,0.05,0.1,0.15,0.2,0.25,0.3 --pipelines "$P24" --paper-axis \
    --report reports/paper/mnist24 --name fig3-fgsm --title 'Fig. 3 (24x24, the paper setting): accuracy under FGSM'
  $V eval "${D[@]}" --samples 1000 --attack fgsm --eps 0,0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08 --pipelines "$P24" --paper-axis \
    --report reports/paper/mnist24 --name fig4-fgsm-small --title 'Fig. 4 (24x24, the paper setting): accuracy under FGSM, small epsilon'
  for k in 1 2; do
    $V sweep "${D[@]}" --split $k --k 100,300,500,900 --epochs 2 --samples 1000 --eps 0,0.02,0.04,0.1,0.2,0.26,0.28,0.3 --paper-axis --report reports/paper/mnist24
  done
  node --import tsx scripts/paper-compare.ts reports/paper
fi
if [[ $what == sweep || $what == all ]]; then
  # Trained sweep bundles are kept in .cache/sweep: a finished K is only re-evaluated, not retrained.
  $V sweep --split 1 --epochs 2 --samples 1000 --report reports/paper
  $V sweep --split 2 --epochs 2 --samples 1000 --report reports/paper
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
    $V calibrate --pipeline "$p" --fpr 0.01 --force
  done
  $V calibrate --pipeline bits1 --pipeline median2 --fpr 0.01 --force
  for a in fgsm pgd; do
    $V detect-eval --pipeline 'split2>full' --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/split2-full"
    $V detect-eval --pipeline 'full' --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/full"
    $V detect-eval --pipeline 'adv:split2>full' --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/adv-split2-full"
    $V detect-eval --pipeline bits1 --pipeline median2 --attack $a --eps 0.05,0.1,0.2,0.3 --samples 1000 --report "reports/detection/feature-squeezing"
  done
fi
if [[ $what == transfer || $what == all ]]; then
  # Second dataset through the IDX loader; models from scripts/train-models.sh with the same flags (see reports/transfer/README.md).
  FASHION=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
  if [[ ! -f $FASHION/t10k-images-idx3-ubyte.gz && ! -f $FASHION/t10k-images-idx3-ubyte ]]; then
    echo "transfer: no Fashion-MNIST IDX files under $FASHION (apt-get install dataset-fashion-mnist)" >&2; exit 1
  fi
  TP='full,split2,split2>full,full>split2,adv:split2,adv:split2>full'
  T=(--dataset "idx:$FASHION" --models models/fashion-mnist --report reports/transfer)
  $V eval "${T[@]}" --samples 1000 --attack fgsm --eps 0,0.05,0.1,0.15,0.2,0.25,0.3 --pipelines "$TP" --name fgsm \
    --title 'Fashion-MNIST: accuracy under FGSM, epsilon 0..0.3'
  $V eval "${T[@]}" --samples 1000 --attack pgd --steps 40 --eps 0,0.1,0.2,0.3 --pipelines "$TP" --name pgd \
    --title 'Fashion-MNIST: PGD-40 (attack on the classifier)'
  $V eval "${T[@]}" --samples 200 --attack bpda --steps 20 --eps 0,0.1,0.2,0.3 --pipelines "$TP" --name bpda \
    --title 'Fashion-MNIST: BPDA-20 (adaptive, through the purifier)'
fi
if [[ $what == replay || $what == all ]]; then
  # A throwaway local broker (or $KAFKA_BROKERS): 600 sample records (half FGSM 0.1) replayed through two pipelines.
  if [[ -z ${KAFKA_BROKERS:-} ]]; then
    dir=$(mktemp -d)
    trap 'bash scripts/kafka.sh stop --dir "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
    eval "$(bash scripts/kafka.sh start --dir "$dir" | grep '^KAFKA_BROKERS=')"
    export KAFKA_BROKERS
  fi
  $V produce-sample --topic images.sample --count 600 --adversarial-ratio 0.5 --attack fgsm --eps 0.1 --seed 7
  $V replay --topic images.sample --pipeline 'split2>full' --pipeline full --report reports/replay --output-topic images.sample.guarded
fi
