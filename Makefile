# One task vocabulary for people, the README and CI.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export OMP_NUM_THREADS ?= 1

.PHONY: help uv setup system-deps images run train serve test test-fast lint format bench drift-demo rollout-demo manifests generate

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

uv:  ## Install uv with pip if it is missing.
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

system-deps:  ## Install Debian packages the tests need (promtool, h2load, haproxy, chromium; podman and mmdebstrap for the images) when missing.
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v h2load >/dev/null 2>&1 || missing="$$missing nghttp2-client"; \
	command -v haproxy >/dev/null 2>&1 || missing="$$missing haproxy"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "install the Debian packages$$missing to run the monitoring, load and browser tests" >&2; fi; fi
	containers/system-deps.sh

# No registry needed: a Debian base from this machine's apt mirror, the local uv binary; the
# Dockerfiles' defaults stay the public images (containers/images.sh, k8s/README.md).
images: uv system-deps  ## Build the inference, training and HAProxy images with podman (IMAGES="api proxy" for some).
	containers/images.sh $(IMAGES)

# Bytecode is compiled once here, as in the images (UV_COMPILE_BYTECODE): where
# PYTHONDONTWRITEBYTECODE is set (CI, this workplace) every process would otherwise compile all it
# imports from source (importing mlflow: 8.0 s, against 2.5 s compiled).
setup: uv  ## Create .venv from uv.lock with every package and dependency group.
	$(UV) sync --frozen --all-packages --all-groups --compile-bytecode

train: setup  ## Run the DVC pipeline: ingest … export, register, promote, publish (the champion).
	$(UV) run --frozen dvc repro

run: train  ## The main job: build the model, then serve it.
	$(MAKE) serve

# Settings (MODEL_DIR, PORT, WORKERS, ...) reach car-serve as environment variables, from the
# shell or the make command line (`make serve WORKERS=4`); their defaults live in Settings only.
serve: setup  ## Serve the model with car-serve (settings: env vars, see `car-serve --help`).
	$(UV) run --frozen car-serve

test: lint system-deps  ## Lint and types, then the whole test suite (what CI runs).
	$(UV) run --frozen pytest --durations=25

# The markers are registered (and explained) in pyproject.toml; tests/programs.py lists the
# programs `needs` may name. -n auto: one worker per core.
test-fast: setup  ## The edit loop: the unit tests (no slow, integration or outside programs), in parallel.
	$(UV) run --frozen pytest -n auto -m "not slow and not integration and not needs"

lint: setup  ## ruff (lint + format check) and mypy.
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: setup  ## Apply ruff's fixes and formatting.
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

bench: setup  ## Run the benchmarks (model-level, Locust side by side, the peers MLServer and BentoML).
	$(UV) run --frozen python -m benchmarks.run

# The retrain moves the registry's aliases and publishes, as in production; the demo puts both
# back at the end, on failure too (scripts/demo_restore.py), so `make train` is unchanged after it.
drift-demo: train  ## The drift loop on the real data (replay, drift, retrain, reload); restores the registry's aliases and serving folder after.
	$(UV) run --frozen python -m scripts.drift_demo

# Live evidence both ways: a better challenger shadowed then promoted, a 2x worse one refused;
# restores the registry's aliases and the serving folder after, as drift-demo does.
rollout-demo: train  ## Shadow a refreshed challenger and a doubled one on the newest 2022 listings; promote-live decides each.
	$(UV) run --frozen python -m scripts.rollout_demo

# OVERLAY: a folder of k8s/overlays (dev, prod, keda); `make -s manifests OVERLAY=prod | kubectl apply -f -`
# (-s: make's own echo of the setup step would go into the pipe).
OVERLAY ?= dev
manifests: setup  ## Print the Kubernetes manifests of k8s/overlays/$(OVERLAY), rules included.
	@$(UV) run --frozen python -m k8s.render k8s/overlays/$(OVERLAY)

# After any change to inference/haproxy/haproxy.cfg, monitoring/rules/*.yml, the PodMonitor's
# labels or the SLO (inference/src/inference/slo.py): kustomize reads only inside k8s/, so its
# copies are committed, and the SLO's values are written into the files that state them
# (tests/k8s/test_generated.py fails on a stale one, naming it and the difference).
# After a change to what a stage imports, or to a module it runs that leaves its outputs the same
# (training/README.md, "Code deps"): dvc.yaml's code deps and dvc.lock's records of them are
# generated too (tests/training/jobs fails on a stale or hand-edited copy). A change to what a
# stage computes needs `make train` instead.
generate: setup  ## Write the generated files: k8s/'s copies, the SLO's values, dvc.yaml's code deps.
	@$(UV) run --frozen python -m scripts.generate
