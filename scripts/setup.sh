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

# 1. Debian packages: image codecs, SQLite, Python for the install-time model tooling; for tests
# also the servers they start on loopback themselves (Redis, PostgreSQL).
packages=(libturbojpeg0-dev libpng-dev libwebp-dev libsqlite3-dev python3 python3-venv python3-pip
          curl ca-certificates)
[ "$mode" = test ] && packages+=(redis-server postgresql-15)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # Servers are installed, not started: the tests start their own instances on free ports.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy"
    made_policy=1
    trap 'as_root rm -f "$policy"' EXIT
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ -n "$made_policy" ]; then as_root rm -f "$policy"; trap - EXIT; fi
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
