#!/usr/bin/env bash
# Style check: swift-format (shipped with the toolchain) with the repository's .swift-format.
set -euo pipefail
cd "$(dirname "$0")/.."
swift format lint --strict --recursive --parallel Package.swift Sources Tests Fuzz
echo "lint: ok"
