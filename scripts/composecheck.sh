#!/usr/bin/env bash
# Check a Compose file without a Docker engine: tools/composecheck loads it with compose-go (the
# loader Docker Compose uses: Compose Specification JSON schema, interpolation, references between
# services) and prints the normalized project as JSON.
#
#   bash scripts/composecheck.sh compose.yaml
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BIN=$(bash "$ROOT/scripts/go-tool.sh" composecheck)
exec "$BIN" "$@"
