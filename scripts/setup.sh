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

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: image codecs, SQLite, Python for the install-time model tooling, and
#    PostgreSQL 15 (the tests run a primary and a streaming replica of it on loopback).
packages=(libturbojpeg0-dev libpng-dev libwebp-dev libsqlite3-dev python3 python3-venv python3-pip
          curl ca-certificates postgresql-15)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

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

# 3. Build.
if [ "$mode" = test ]; then
  say "building (debug, with tests)"
  swift build --build-tests
  bin="$root/.build/debug/facesocial"
else
  say "building (release)"
  swift build -c release --product facesocial
  bin="$root/.build/release/facesocial"
fi

# 4. Models, checked by SHA-256 against models/manifest.json.
say "installing models"
"$bin" models pull ${FACESOCIAL_MODEL_MIRROR:+--from "$FACESOCIAL_MODEL_MIRROR"}
say "ready"
