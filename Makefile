# FaceSocial: `make run` serves on :8000 with the embedded defaults, `make test` runs every test.
# Both install whatever is missing first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := run

.PHONY: run test lint format setup bench-detect run-gpu bench-engines bench-micro bench-http bench-thresholds \
	bench-routes tune test-deploy test-deploy-static test-reliability test-containers

# FACESOCIAL_GPU=cuda (or `make run-gpu`) also installs ONNX Runtime's GPU build (docs/gpu.md).
export FACESOCIAL_GPU

run:
	@scripts/setup.sh run
	@source scripts/lib/gpu-env.sh && exec .build/release/facesocial serve

run-gpu:
	@$(MAKE) run FACESOCIAL_GPU=cuda FACESOCIAL_CUDA_DEVICES=$${FACESOCIAL_CUDA_DEVICES:-0}

test:
	@scripts/setup.sh test
	@scripts/lint.sh
	@scripts/test.sh

lint:
	@scripts/lint.sh

format:
	swift format format --in-place --recursive --parallel Package.swift Sources Tests Fuzz

setup:
	@scripts/setup.sh run

# Stage timings of detection on the group photo (release build).
bench-detect:
	@scripts/setup.sh run
	@.build/release/facesocial bench detect ../shared/testdata/group6_t1.jpg --iterations 100

# Inference time per model on OpenVINO and ONNX Runtime (CPU), and their agreement (docs/gpu.md).
bench-engines:
	@scripts/setup.sh run
	@.build/release/facesocial bench engines --testdata ../shared/testdata

# Decode, letterbox, alignment and each model's inference on their own.
bench-micro:
	@scripts/setup.sh run
	@.build/release/facesocial bench micro --testdata ../shared/testdata

# Same/different-person similarity and liveness margins the default thresholds come from.
bench-thresholds:
	@scripts/setup.sh run
	@.build/release/facesocial bench thresholds --testdata ../shared/testdata

# Measure each model's CPU precision and OpenVINO hint on this machine now, and cache the choice
# (the server otherwise does it at a model's first load on a CPU it has not seen).
tune:
	@scripts/setup.sh run
	@.build/release/facesocial tune

# CPU time per request of each route's pipeline, and the throughput ceiling it implies.
bench-routes:
	@scripts/setup.sh run
	@.build/release/facesocial bench routes --testdata ../shared/testdata

# HTTP load with wrk against FaceSocial and the FastAPI/onnxruntime peer, with the route ceilings
# and the tuning of the same run (docs/benchmarks.md).
bench-http:
	@scripts/bench-http.sh

# nginx in front of four instances under load through blue-green, canary, rollback and a rolling
# restart (zero failed requests), backups with measured restores, and the static checks.
test-deploy:
	@scripts/setup.sh run
	@tests/deploy/run.sh

# hadolint, compose schema, promtool, Kubernetes overlays (seconds; part of `make test`).
test-deploy-static:
	@tests/deploy/run.sh static

# Load and soak, faults (Redis, PostgreSQL replica and primary, a corrupted model, SIGTERM), bad
# input, libFuzzer, schemathesis and a privacy scan, with a summary table (docs/reliability.md).
# About 11 minutes; `scripts/reliability.sh smoke` (part of `make test`) is the 4-minute version.
test-reliability:
	@scripts/setup.sh run
	@scripts/reliability.sh full

# Containers with podman, no Docker engine or registry needed (docs/deployment.md, "Containers"):
# local base images, the CPU image (multi-stage, full build) and the GPU image, the CPU image run
# hardened, the docker CLI against podman's socket, the production compose stack behind nginx TLS
# with a rolling update and a rollback. FACESOCIAL_CONTAINERS_GPU=0 skips the GPU image build.
test-containers:
	@scripts/containers/install.sh
	@tests/containers/run.sh all
