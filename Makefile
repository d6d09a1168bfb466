# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each installs what it needs (npm packages, native libtensorflow, Kafka jars, helm),
# idempotently, with caches under the repo (.cache/, git-ignored).
SHELL := /bin/bash
export npm_config_nodedir := /usr
export VQGUARD_REQUIRE_NATIVE := 1

STAMP := node_modules/.vqguard-install-stamp
VQ := node bin/vqguard.mjs

.PHONY: install-cuda install datasets kafka-jars registry helm tools webgpu test test-unit test-faults demo models models-fashion reports typecheck layering build bench clean-cache

# BACKEND=cuda: also tfjs-node-gpu with libtensorflow for CUDA 12 from PyPI (the `tensorflow` wheel
# and its NVIDIA wheels when the host lacks cuDNN 9 / cuBLAS 12). Not tested here (no GPU; the GPU
# test machine has CUDA 13 only). The WebGPU backend needs nothing beyond `npm ci`.
BACKEND ?= cpu
install: $(STAMP) kafka-jars $(if $(filter cuda,$(BACKEND)),install-cuda)

install-cuda: $(STAMP)
	npm install --no-save --ignore-scripts --no-audit --no-fund @tensorflow/tfjs-node-gpu@4.22.0
	VQGUARD_TFJS_PACKAGE=@tensorflow/tfjs-node-gpu VQGUARD_TF_ROUTE=$${VQGUARD_TF_ROUTE:-pypi} bash scripts/setup-native.sh

$(STAMP): package.json package-lock.json scripts/setup-native.sh
	@echo "== installing npm packages (scripts off; native backend provisioned next)"
	npm ci --ignore-scripts --no-audit --no-fund
	bash scripts/setup-native.sh
	@touch $@

kafka-jars:
	@bash scripts/kafka.sh fetch

# A real Schema Registry for the tests (Apicurio Registry from Maven Central, in-memory storage):
# built into .cache/registry once (a few minutes cold), then up to date in a second.
registry:
	@bash scripts/registry.sh build

helm:
	@bash scripts/helm.sh version --short

# Checkers for the chart and compose tests, built from the Go module proxy into .cache/bin (once):
# tools/kubecheck (manifests vs. Kubernetes types and CRDs), tools/composecheck (compose-go),
# promtool (alert rules; the cold build is long on 2 cores).
tools:
	@bash scripts/kubecheck.sh --install-only >/dev/null
	@bash scripts/go-tool.sh composecheck >/dev/null
	@bash scripts/promtool.sh --install-only >/dev/null

# Fashion-MNIST IDX files (Debian dataset-fashion-mnist) for the two tests that read a second dataset;
# best-effort: where apt-get cannot be used those tests skip and say why.
datasets:
	@bash scripts/datasets.sh

# Mesa 25 lavapipe (software Vulkan) so the WebGPU backend's tests run on CPU machines (idempotent).
webgpu:
	@bash scripts/setup-webgpu.sh

typecheck: $(STAMP)
	npx tsc -p tsconfig.json

# Import directions and cycles (the allowed directions are written in .dependency-cruiser.cjs).
layering: $(STAMP)
	npx depcruise src tools --config .dependency-cruiser.cjs

# Compiled JavaScript in dist/ (what the image runs; bin/vqguard.mjs uses it while it is fresh).
build: $(STAMP)
	npm run build

test: install registry helm tools webgpu datasets typecheck layering
	npm test

demo: install
	bash scripts/demo.sh

models: $(STAMP)
	bash scripts/train-models.sh

# The transfer model set: same commands and flags on Fashion-MNIST (Debian: dataset-fashion-mnist),
# capped at the MNIST split's 7,000 training images.
FASHION_DIR ?= /usr/share/datasets/fashion-mnist
models-fashion: $(STAMP)
	DATASET=idx:$(FASHION_DIR) MODELS_OUT=models/fashion-mnist MAX_TRAIN=7000 \
	  ONLY='classifier split1 split2 split1-adv split2-adv' bash scripts/train-models.sh

# Every committed evaluation report (paper, sweep, robustness, detection, transfer); slow on CPU.
reports: $(STAMP)
	bash scripts/reports.sh all

# The guard CLI SIGKILLed at random points while it processes a stream with oversized records
# (test/faults/kill.ts), then one of two instances frozen with SIGSTOP past the session timeout
# (test/faults/freeze.ts), in both delivery modes. `make test` runs smaller versions
# (test/faults.test.ts, test/neverstall.test.ts).
FAULT_N ?= 2000
FAULT_K ?= 6
FAULT_OVERSIZE ?= 97
FAULT_FREEZES ?= 3
test-faults: install
	FAULT_N=$(FAULT_N) FAULT_K=$(FAULT_K) FAULT_OVERSIZE=$(FAULT_OVERSIZE) FAULT_MODE=atleastonce node --import tsx test/faults/kill.ts
	FAULT_N=$(FAULT_N) FAULT_K=$(FAULT_K) FAULT_OVERSIZE=$(FAULT_OVERSIZE) FAULT_MODE=transactions node --import tsx test/faults/kill.ts
	FAULT_N=$(FAULT_N) FAULT_FREEZES=$(FAULT_FREEZES) FAULT_OVERSIZE=$(FAULT_OVERSIZE) FAULT_MODE=atleastonce node --import tsx test/faults/freeze.ts
	FAULT_N=$(FAULT_N) FAULT_FREEZES=$(FAULT_FREEZES) FAULT_OVERSIZE=$(FAULT_OVERSIZE) FAULT_MODE=transactions node --import tsx test/faults/freeze.ts

bench: install
	$(VQ) bench backend
