#!/usr/bin/env bash
# Fashion-MNIST IDX files for the tests that read a second dataset (Debian package
# dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist). Idempotent and best-effort:
# installed when this host has apt-get and we may use it (root, or passwordless sudo); otherwise
# it says how, and those two tests skip with the same reason. Never fails the build.
set -u
DIR=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
if ls "$DIR"/*idx3-ubyte* >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "datasets: $DIR absent and no apt-get here (install dataset-fashion-mnist by hand); the Fashion-MNIST tests will skip" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "datasets: $DIR absent; run 'apt-get install dataset-fashion-mnist' as root; the Fashion-MNIST tests will skip" >&2
    exit 0
  fi
fi
echo "datasets: installing dataset-fashion-mnist (apt)"
if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 \
  || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1; }; then
  echo "datasets: $DIR ready"
else
  echo "datasets: apt-get could not install dataset-fashion-mnist; the Fashion-MNIST tests will skip" >&2
fi
exit 0
