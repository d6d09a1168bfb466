#!/usr/bin/env bash
# Run Prometheus's promtool, building it first from the Go module proxy if needed (idempotent):
#
#   bash scripts/promtool.sh check rules rules.yaml
#   bash scripts/promtool.sh --install-only       # build only, print the path
#
# Which promtool runs: $VQGUARD_PROMTOOL if set; else .cache/bin/vqguard-promtool-$PROMTOOL_VERSION;
# else a `promtool` on PATH; else it is built:
#   GOBIN=... go install github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION
# (Prometheus publishes its Go module as v0.<major*100+minor>.<patch>: v0.316.0 is Prometheus 3.16.0.)
# The cold build is long on 2 cores (the whole Prometheus tree, ~15 min while other work ran);
# later builds reuse Go's build cache. Exits 3 when promtool cannot be obtained, saying why.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}
BIN_DIR=$ROOT/.cache/bin
BIN=$BIN_DIR/vqguard-promtool-$PROMTOOL_VERSION

unavailable() { echo "promtool.sh: promtool unavailable: $*" >&2; exit 3; }

pick() {
  if [ -n "${VQGUARD_PROMTOOL:-}" ]; then
    [ -x "$VQGUARD_PROMTOOL" ] || unavailable "VQGUARD_PROMTOOL=$VQGUARD_PROMTOOL is not executable"
    echo "$VQGUARD_PROMTOOL"; return
  fi
  if [ -x "$BIN" ]; then echo "$BIN"; return; fi
  if command -v promtool >/dev/null; then command -v promtool; return; fi
  command -v go >/dev/null || unavailable "go not found (needed to build promtool from the Go module proxy)"
  mkdir -p "$BIN_DIR"
  exec 9>"$BIN_DIR/.vqguard-promtool-$PROMTOOL_VERSION.lock"
  flock 9
  if [ ! -x "$BIN" ]; then
    local tmp start=$SECONDS
    tmp=$(mktemp -d "$BIN_DIR/.vqguard-promtool.XXXXXX")
    echo "promtool.sh: building promtool $PROMTOOL_VERSION with $(go env GOVERSION) (first time only; long on 2 cores)..." >&2
    if ! GOFLAGS=-mod=mod GOBIN="$tmp" CGO_ENABLED=0 nice -n 10 go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" >&2; then
      rm -rf "$tmp"
      unavailable "go install github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION failed"
    fi
    mv -f "$tmp/promtool" "$BIN"
    rm -rf "$tmp"
    echo "promtool.sh: built ${BIN#"$ROOT"/} in $((SECONDS - start)) s" >&2
  fi
  echo "$BIN"
}

P=$(pick)
if [ "${1:-}" = "--install-only" ]; then echo "$P"; exit 0; fi
exec "$P" "$@"
