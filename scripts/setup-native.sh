#!/usr/bin/env bash
# Provision the native TensorFlow backend for tfjs-node (or tfjs-node-gpu).
#
# Order of routes (VQGUARD_TF_ROUTE=auto, the default):
#   1. the binding already loads (e.g. an ordinary `npm install` on an internet-connected
#      host downloaded libtensorflow and the prebuilt addon): nothing to do;
#   2. upstream: tfjs-node's own install script (downloads libtensorflow 2.9.1), bounded by
#      VQGUARD_TF_UPSTREAM_TIMEOUT seconds (default 60);
#   3. pypi: libtensorflow from the TensorFlow wheel on PyPI (tensorflow-cpu, or tensorflow
#      on CUDA hosts), then the addon is built from tfjs-node's shipped sources with node-gyp
#      against Node's installed headers (npm_config_nodedir=/usr).
# VQGUARD_TF_ROUTE=pypi skips straight to 3; =upstream tries only 2.
# CUDA (tfjs-node-gpu; `make install BACKEND=cuda`): the pypi route takes libtensorflow from the
# `tensorflow` wheel (built for CUDA 12) and, unless the host already has cuDNN 9 and cuBLAS 12
# (VQGUARD_CUDA_WHEELS=auto|1|0), the NVIDIA wheels that wheel names for its `and-cuda` extra
# (cuDNN, cuBLAS, cuFFT, ... for CUDA 12: gigabytes), whose libraries go next to libtensorflow
# (its RUNPATH has $ORIGIN). NOT tested on this project's machines: they have no GPU, and its GPU
# test machine has CUDA 13 only (README, "GPU").
# The wheel is cached under .cache/wheels (git-ignored), so a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUTE=${VQGUARD_TF_ROUTE:-auto}
TF_WHEEL_VERSION=${VQGUARD_TF_WHEEL_VERSION:-2.21.0}
export npm_config_nodedir=${npm_config_nodedir:-/usr}

has_cuda() { [ -e /proc/driver/nvidia/version ] || command -v nvidia-smi >/dev/null 2>&1; }
if [ -n "${VQGUARD_TFJS_PACKAGE:-}" ]; then PKG=$VQGUARD_TFJS_PACKAGE
elif has_cuda && [ -d node_modules/@tensorflow/tfjs-node-gpu ]; then PKG=@tensorflow/tfjs-node-gpu
else PKG=@tensorflow/tfjs-node; fi
PKGDIR=$ROOT/node_modules/$PKG
[ -d "$PKGDIR" ] || { echo "setup-native: $PKG is not installed; run npm ci first" >&2; exit 1; }

loads() { node -e "require('$PKG')" >/dev/null 2>&1; }
log() { echo "setup-native: $*" >&2; }

if loads; then log "$PKG binding loads; nothing to do"; exit 0; fi

if [ "$ROUTE" = auto ] || [ "$ROUTE" = upstream ]; then
  log "trying tfjs-node's own install (download), timeout ${VQGUARD_TF_UPSTREAM_TIMEOUT:-60}s"
  if (cd "$PKGDIR" && timeout "${VQGUARD_TF_UPSTREAM_TIMEOUT:-60}" node scripts/install.js >/tmp/vqguard-tf-upstream.log 2>&1) && loads; then
    log "upstream route worked"; exit 0
  fi
  log "upstream route failed (see /tmp/vqguard-tf-upstream.log)"
  rm -rf "$PKGDIR/deps"
  [ "$ROUTE" = upstream ] && exit 1
fi

# --- PyPI route --------------------------------------------------------------------------
WHEEL_PKG=tensorflow-cpu
[ "$PKG" = @tensorflow/tfjs-node-gpu ] && WHEEL_PKG=tensorflow
CACHE=$ROOT/.cache/wheels
mkdir -p "$CACHE"
WHEEL=$(ls "$CACHE"/${WHEEL_PKG//-/_}-"$TF_WHEEL_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$WHEEL" ]; then
  log "downloading $WHEEL_PKG==$TF_WHEEL_VERSION from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE" "$WHEEL_PKG==$TF_WHEEL_VERSION"
  WHEEL=$(ls "$CACHE"/${WHEEL_PKG//-/_}-"$TF_WHEEL_VERSION"-*.whl | head -1)
fi
log "extracting libtensorflow from $(basename "$WHEEL")"
DEPS=$PKGDIR/deps
rm -rf "$DEPS"; mkdir -p "$DEPS/lib" "$DEPS/include"
python3 - "$WHEEL" "$DEPS" <<'PY'
import sys, zipfile, shutil, os
wheel, deps = sys.argv[1], sys.argv[2]
libs = {"tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2"}
inc_prefixes = ("tensorflow/include/tensorflow/c/", "tensorflow/include/tensorflow/core/platform/ctstring",
                "tensorflow/include/tsl/platform/ctstring", "tensorflow/include/xla/tsl/c/")
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name in libs:
            dest = os.path.join(deps, "lib", os.path.basename(name))
        elif name.startswith(inc_prefixes) and not name.endswith("/"):
            dest = os.path.join(deps, "include", name[len("tensorflow/include/"):])
        else:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
PY
# libtensorflow_cc carries the C API (TF_*, TFE_*); give it the names tfjs-node links and checks.
(cd "$DEPS/lib"
 ln -sf libtensorflow_cc.so.2 libtensorflow.so
 ln -sf libtensorflow_cc.so.2 libtensorflow.so.2
 ln -sf libtensorflow_cc.so.2 libtensorflow.so.2.9.1
 ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so
 ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so.2.9.1)
echo "pypi:$WHEEL_PKG==$TF_WHEEL_VERSION" > "$DEPS/PROVENANCE"

# CUDA 12 user-space libraries from PyPI (the tensorflow wheel's `and-cuda` extra).
host_has_cuda_libs() { ldconfig -p 2>/dev/null | grep -q 'libcudnn.so.9' && ldconfig -p 2>/dev/null | grep -q 'libcublas.so.12'; }
CUDA_WHEELS=${VQGUARD_CUDA_WHEELS:-auto}
if [ "$WHEEL_PKG" = tensorflow ] && { [ "$CUDA_WHEELS" = 1 ] || { [ "$CUDA_WHEELS" = auto ] && ! host_has_cuda_libs; }; }; then
  REQS=$(python3 - "$WHEEL" <<'PY'
import sys, zipfile, re
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        m = re.match(r"Requires-Dist: (nvidia-[A-Za-z0-9_.-]+)\s*(\(?[<>=!~][^;]*?\)?)?\s*;.*extra == .and-cuda.", line)
        if m:
            print(m.group(1) + (m.group(2) or "").replace("(", "").replace(")", "").replace(" ", ""))
PY
)
  [ -n "$REQS" ] || { log "the $WHEEL_PKG wheel names no and-cuda NVIDIA wheels"; exit 1; }
  log "downloading the CUDA 12 NVIDIA wheels from PyPI: $(echo $REQS | tr '\n' ' ')"
  NV=$CACHE/nvidia-$TF_WHEEL_VERSION
  mkdir -p "$NV"
  # shellcheck disable=SC2086
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$NV" $REQS
  python3 - "$DEPS/lib" "$NV"/*.whl <<'PY'
import sys, zipfile, shutil, os, re
dest = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if re.match(r"nvidia/[^/]+/lib/[^/]+\.so[.0-9]*$", info.filename):
                with z.open(info) as src, open(os.path.join(dest, os.path.basename(info.filename)), "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
PY
  echo "pypi-cuda-wheels: $(echo $REQS | tr '\n' ' ')" >> "$DEPS/PROVENANCE"
  log "CUDA libraries placed in $DEPS/lib"
fi
log "building the $PKG addon from source with node-gyp (nodedir=$npm_config_nodedir)"
(cd "$PKGDIR" && "$ROOT/node_modules/.bin/node-pre-gyp" install --build-from-source --nodedir="$npm_config_nodedir" >/tmp/vqguard-tf-build.log 2>&1) \
  || (cd "$PKGDIR" && node "$(dirname "$(node -p "require.resolve('@mapbox/node-pre-gyp/package.json')")")/bin/node-pre-gyp" install --build-from-source --nodedir="$npm_config_nodedir" >/tmp/vqguard-tf-build.log 2>&1) \
  || { tail -30 /tmp/vqguard-tf-build.log >&2; exit 1; }
loads || { log "built, but the binding does not load"; node -e "require('$PKG')"; exit 1; }
log "native backend ready ($PKG, libtensorflow from $WHEEL_PKG $TF_WHEEL_VERSION)"
