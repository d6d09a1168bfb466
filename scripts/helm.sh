#!/usr/bin/env bash
# Run Helm 3, installing it first into .cache/bin/helm if it is missing (idempotent).
#
#   bash scripts/helm.sh lint --strict deploy/helm/vqguard
#   bash scripts/helm.sh template vq deploy/helm/vqguard -f deploy/helm/vqguard/ci/sidecar-values.yaml
#   bash scripts/helm.sh --install-only        # just make sure .cache/bin/helm exists, print its path
#
# Which helm runs, in order:
#   1. $VQGUARD_HELM, if set (a path to a helm 3 binary);
#   2. .cache/bin/helm, if it was built for $HELM_VERSION (stamp .cache/bin/helm.version);
#   3. a `helm` on PATH that reports v3.x (e.g. a CI image that ships one);
#   4. otherwise build it from the Go module proxy:
#        GOBIN=.cache/bin go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION
#      (Debian has no helm package and get.helm.sh is unreachable from the build machines.)
#      Needs Go >= the version helm's go.mod asks for (v3.22.0: go 1.26.0). The module and build
#      caches are Go's defaults (GOMODCACHE=~/go/pkg/mod, GOCACHE=~/.cache/go-build), so a rebuild
#      after `rm -rf .cache` is fast. Cold build on 2 cores: see deploy/helm/vqguard/README.md.
#
# HELM_VERSION (default below) pins the version; set VQGUARD_HELM_NO_PATH=1 to skip step 3.
set -euo pipefail
ORIG_PWD=$PWD
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
cd "$ORIG_PWD"

HELM_VERSION=${HELM_VERSION:-v3.22.0}
BIN_DIR=$ROOT/.cache/bin
HELM=$BIN_DIR/helm
STAMP=$BIN_DIR/helm.version

log() { echo "helm.sh: $*" >&2; }
die() { log "$*"; exit 1; }

installed_ok() { [ -x "$HELM" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HELM_VERSION" ]; }

build_helm() {
  command -v go >/dev/null || die "go not found: needed to build helm $HELM_VERSION from the Go module proxy (or put a helm 3 on PATH / set VQGUARD_HELM)"
  mkdir -p "$BIN_DIR"
  # One build at a time (parallel test files may all call this script on a fresh checkout).
  exec 9>"$BIN_DIR/.helm.lock"
  flock 9
  if installed_ok; then return 0; fi

  local start=$SECONDS tmp
  tmp=$(mktemp -d "$BIN_DIR/.helm-build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "building helm $HELM_VERSION with $(go env GOVERSION) (first time only; a few minutes on 2 cores)..."

  # Download the module first to read the k8s client-go version it pins: the official release
  # (helm's Makefile) stamps the default Kubernetes version used by `template`/`lint` from it.
  local gomod k8s_ver k8s_major k8s_minor
  gomod=$(GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
  [ -n "$gomod" ] && [ -f "$gomod" ] || die "go mod download helm.sh/helm/v3@$HELM_VERSION failed"
  k8s_ver=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  if [[ $k8s_ver =~ ^v0\.([0-9]+)\. ]]; then
    k8s_major=1
    k8s_minor=${BASH_REMATCH[1]}
    ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$k8s_major"
    ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
    ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$k8s_major"
    ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
  fi

  # nice: keep the machine usable for whatever else runs (model training).
  GOFLAGS=-mod=mod GOBIN="$tmp" CGO_ENABLED=0 \
    nice -n 10 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 \
    || die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
  mv -f "$tmp/helm" "$HELM"
  echo "$HELM_VERSION" >"$STAMP"
  rm -rf "$tmp"
  trap - EXIT
  log "installed ${HELM#"$ROOT"/} ($HELM_VERSION, k8s ${k8s_major:-?}.${k8s_minor:-?}) in $((SECONDS - start)) s"
}

pick_helm() {
  if [ -n "${VQGUARD_HELM:-}" ]; then
    [ -x "$VQGUARD_HELM" ] || die "VQGUARD_HELM=$VQGUARD_HELM is not executable"
    echo "$VQGUARD_HELM"
    return
  fi
  if installed_ok; then echo "$HELM"; return; fi
  if [ -z "${VQGUARD_HELM_NO_PATH:-}" ] && command -v helm >/dev/null; then
    local p v
    p=$(command -v helm)
    v=$("$p" version --template '{{.Version}}' 2>/dev/null || true)
    if [[ $v == v3.* ]]; then echo "$p"; return; fi
    log "ignoring $p (version '${v:-unknown}', need v3.x)"
  fi
  build_helm
  echo "$HELM"
}

if [ "${1:-}" = "--install-only" ]; then
  pick_helm
  exit 0
fi
H=$(pick_helm)
exec "$H" "$@"
