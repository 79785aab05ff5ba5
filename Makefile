# FaceSocial: `make run` serves on :8000 with the embedded defaults, `make test` runs every test.
# Both install whatever is missing first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := run

.PHONY: run test lint format setup bench-detect run-gpu bench-engines

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
	swift format format --in-place --recursive --parallel Package.swift Sources Tests

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
