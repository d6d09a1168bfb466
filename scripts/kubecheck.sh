#!/usr/bin/env bash
# Validate rendered Kubernetes manifests offline (the kubeconform step, without the JSON schemas
# kubeconform downloads from GitHub at run time): tools/kubecheck decodes built-in kinds strictly
# into the k8s.io/api Go types and checks custom resources against their CRDs' openAPIV3Schema with
# the API server's own validator. See tools/kubecheck/main.go.
#
#   bash scripts/helm.sh template vq deploy/helm/vqguard | bash scripts/kubecheck.sh
#   bash scripts/kubecheck.sh rendered.yaml ...
#   bash scripts/kubecheck.sh --install-only      # build/fetch only, print the binary's path
#
# Everything comes from the Go module proxy (idempotent; first run ~1-2 min on 2 cores):
#   - the checker, built by scripts/go-tool.sh into .cache/bin/vqguard-kubecheck-<hash of its sources>;
#   - the CRDs, from the KEDA and prometheus-operator modules' own files (pinned below).
set -euo pipefail
ORIG_PWD=$PWD
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
cd "$ORIG_PWD"

KEDA_MODULE=github.com/kedacore/keda/v2@${KEDA_VERSION:-v2.20.2}
PROMOP_MODULE=github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}

log() { echo "kubecheck.sh: $*" >&2; }
die() { log "$*"; exit 1; }
command -v go >/dev/null || die "go not found: needed to build tools/kubecheck from the Go module proxy"

BIN=$(bash "$ROOT/scripts/go-tool.sh" kubecheck)

moddir() {
  local dir
  dir=$(GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
  [ -n "$dir" ] && [ -d "$dir" ] || die "go mod download $1 failed"
  echo "$dir"
}
KEDA_DIR=$(moddir "$KEDA_MODULE")
PROMOP_DIR=$(moddir "$PROMOP_MODULE")
CRDS=(
  "$KEDA_DIR/config/crd/bases/keda.sh_scaledobjects.yaml"
  "$PROMOP_DIR/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  "$PROMOP_DIR/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
)
for c in "${CRDS[@]}"; do [ -f "$c" ] || die "CRD file missing: $c"; done

if [ "${1:-}" = "--install-only" ]; then
  echo "$BIN"
  exit 0
fi
args=()
for c in "${CRDS[@]}"; do args+=(-crd "$c"); done
exec "$BIN" "${args[@]}" "$@"
