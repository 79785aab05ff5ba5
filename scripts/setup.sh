#!/usr/bin/env bash
# Installs whatever is missing for FaceSocial, idempotently: Debian packages, the pinned OpenVINO
# runtime (headers and libraries unpacked from its PyPI wheel), the build, and the models.
# With nothing missing it only checks and returns in seconds.
#
#   scripts/setup.sh run    # release build + models, for `make run`
#   scripts/setup.sh test   # debug build with tests + models, for `make test`
set -euo pipefail

mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
deps="$root/.deps"
openvino_version=2026.4.1
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

source "$root/scripts/lib/debian-packages.sh"

# 1. Debian packages: image codecs, SQLite, Python for the install-time model tooling; for tests
# also the servers they start on loopback themselves (Redis, PostgreSQL).
packages=(libturbojpeg0-dev libpng-dev libwebp-dev libheif-dev libsqlite3-dev python3 python3-venv python3-pip
          curl ca-certificates)
# openssl makes the TLS certificates of the Redis Cluster tests; chromium and chromium-driver run
# the web console's browser tests (tests/console); heif-enc (libheif-examples) makes the HEIC test files.
[ "$mode" = test ] && packages+=(redis-server postgresql-15 openssl chromium chromium-driver libheif-examples)
install_missing_packages "${packages[@]}"

# 2. OpenVINO runtime from the pinned wheel (the C API headers and the shared libraries only).
if [ ! -f "$deps/openvino/VERSION" ] || [ "$(cat "$deps/openvino/VERSION")" != "$openvino_version" ]; then
  say "fetching openvino==$openvino_version from PyPI"
  rm -rf "$deps/openvino" "$deps/wheels"
  mkdir -p "$deps/wheels"
  # The wheel is tied to a CPython ABI but the C libraries inside are not; ask for one explicitly
  # so any local Python can fetch it.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$deps/wheels" "openvino==$openvino_version"
  python3 "$root/scripts/lib/unpack_openvino.py" "$deps/wheels"/openvino-*.whl "$deps/openvino"
  echo "$openvino_version" > "$deps/openvino/VERSION"
  rm -rf "$deps/wheels"
fi

# 2b. ONNX Runtime (the engine for NVIDIA GPUs, optionally for CPU): the C header from Debian
# trixie's libonnxruntime-dev and the library from the pinned PyPI wheel. FACESOCIAL_GPU=cuda
# fetches the GPU build of the same version and its NVIDIA libraries (docs/gpu.md).
onnxruntime_version=1.31.1
gpu=${FACESOCIAL_GPU:-}
# Unset keeps a GPU build fetched earlier (a later `make test` must not swap it back to CPU).
[ -z "$gpu" ] && grep -q -- '-cuda$' "$deps/onnxruntime/lib/VERSION" 2>/dev/null && gpu=cuda
case "${gpu:=cpu}" in
  cpu | cuda) ;;
  *) echo "FACESOCIAL_GPU must be cpu or cuda, got $gpu" >&2; exit 2 ;;
esac
"$root/scripts/lib/fetch_onnxruntime.sh" "$deps" "$onnxruntime_version" "$gpu"

# 3. Build, unless the binary is newer than every source (SwiftPM's own no-op check takes several
# seconds; this keeps a second run with nothing missing fast).
if [ "$mode" = test ]; then
  bin="$root/.build/debug/facesocial"
  stamp="$root/.build/debug/.tests-built"
  if [ ! -f "$stamp" ] || [ -n "$(find Package.swift Sources Tests -newer "$stamp" -print -quit)" ]; then
    say "building (debug, with tests)"
    swift build --build-tests
    touch "$stamp"
  fi
else
  bin="$root/.build/release/facesocial"
  if [ ! -x "$bin" ] || [ -n "$(find Package.swift Sources -newer "$bin" -print -quit)" ]; then
    say "building (release)"
    swift build -c release --product facesocial
  fi
fi

# 4. Models, checked by SHA-256 against models/manifest.json.
say "installing models"
"$bin" models pull ${FACESOCIAL_MODEL_MIRROR:+--from "$FACESOCIAL_MODEL_MIRROR"}
say "ready"
