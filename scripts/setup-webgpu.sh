#!/usr/bin/env bash
# Provision what the WebGPU backend needs on a machine without a GPU, idempotently:
# Mesa's software Vulkan driver (lavapipe) and the Vulkan loader. Dawn (npm `webgpu`) needs a
# Vulkan driver; Debian bookworm's Mesa 22.3 lavapipe lacks shaderUniform*ArrayDynamicIndexing,
# which Dawn requires (no adapter), so Mesa 25 comes from bookworm-backports (measured to work).
#
# Does nothing when a lavapipe ICD of Mesa >= 23 is already installed. Needs root and Debian's
# package registry (apt). VQGUARD_SKIP_WEBGPU_SETUP=1 skips it (the WebGPU tests then say why
# they cannot run and fail, unless VQGUARD_WEBGPU_TESTS=0 turns them off explicitly).
set -euo pipefail

if [[ "${VQGUARD_SKIP_WEBGPU_SETUP:-0}" == 1 ]]; then
  echo "setup-webgpu: skipped (VQGUARD_SKIP_WEBGPU_SETUP=1)"
  exit 0
fi

mesa_version() {
  dpkg-query -W -f='${Status} ${Version}\n' mesa-vulkan-drivers 2>/dev/null | awk '$3=="installed"{print $4}'
}

have_ok() {
  local v
  v="$(mesa_version)"
  [[ -n "$v" ]] || return 1
  dpkg --compare-versions "$v" ge 23 || return 1
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || return 1
  ldconfig -p | grep -q 'libvulkan.so.1' || return 1
}

if have_ok; then
  echo "setup-webgpu: lavapipe $(mesa_version) present"
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "setup-webgpu: no apt-get; install Mesa >= 23 lavapipe (mesa-vulkan-drivers) and libvulkan1 by hand" >&2
  exit 1
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
target=()
if [[ "$codename" == bookworm ]]; then
  list=/etc/apt/sources.list.d/vqguard-bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup-webgpu: adding bookworm-backports to apt sources ($list)"
    $SUDO tee "$list" >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  target=(-t bookworm-backports)
fi

echo "setup-webgpu: installing mesa-vulkan-drivers ${target[*]} and libvulkan1"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${target[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
if ! have_ok; then
  echo "setup-webgpu: lavapipe still missing or too old after install (mesa-vulkan-drivers $(mesa_version))" >&2
  exit 1
fi
echo "setup-webgpu: lavapipe $(mesa_version) installed"
