#!/usr/bin/env bash
# Build one of the Go checkers under tools/ (kubecheck, composecheck) from the Go module proxy, if
# not built yet, and print the binary's path (idempotent; one build at a time):
#
#   bash scripts/go-tool.sh kubecheck     # -> .cache/bin/vqguard-kubecheck-<hash>
#
# The binary's name carries a hash of the tool's go.mod, go.sum and sources, so a changed tool gets
# a new file and a shared .cache/bin never has a binary overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
NAME=${1:?usage: go-tool.sh <tool under tools/>}
SRC=$ROOT/tools/$NAME
[ -f "$SRC/go.mod" ] || { echo "go-tool.sh: no tools/$NAME/go.mod" >&2; exit 2; }
command -v go >/dev/null || { echo "go-tool.sh: go not found: needed to build tools/$NAME from the Go module proxy" >&2; exit 1; }
HASH=$(cd "$SRC" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-12)
BIN_DIR=$ROOT/.cache/bin
BIN=$BIN_DIR/vqguard-$NAME-$HASH
if [ ! -x "$BIN" ]; then
  mkdir -p "$BIN_DIR"
  exec 9>"$BIN_DIR/.vqguard-$NAME-$HASH.lock"
  flock 9
  if [ ! -x "$BIN" ]; then
    start=$SECONDS
    echo "go-tool.sh: building tools/$NAME ($HASH) with $(go env GOVERSION)..." >&2
    tmp=$(mktemp "$BIN_DIR/.vqguard-$NAME.XXXXXX")
    if ! (cd "$SRC" && CGO_ENABLED=0 nice -n 10 go build -trimpath -o "$tmp" .) >&2; then
      rm -f "$tmp"
      echo "go-tool.sh: go build tools/$NAME failed" >&2
      exit 1
    fi
    mv -f "$tmp" "$BIN"
    echo "go-tool.sh: built ${BIN#"$ROOT"/} in $((SECONDS - start)) s" >&2
  fi
fi
echo "$BIN"
