#!/usr/bin/env bash
# Fetches ONNX Runtime for the build, idempotently, without touching the system's apt sources:
#   - the C API header from Debian trixie's libonnxruntime-dev (a private apt configuration under
#     .deps/apt-trixie with its own lists, cache and an empty dpkg status; signatures are checked
#     against the trixie key that bookworm's debian-archive-keyring ships),
#   - the shared library from the pinned PyPI wheel `onnxruntime` (CPU), or with
#     FACESOCIAL_GPU=cuda from `onnxruntime-gpu[cuda,cudnn]` of the same version, whose NVIDIA
#     libraries go to .deps/onnxruntime/nvidia (their lib folders are listed in nvidia-libs.txt).
#
#   scripts/lib/fetch_onnxruntime.sh <deps-dir> <version> [cpu|cuda]
set -euo pipefail

# Absolute, since the apt step below runs from a subfolder (the Dockerfiles pass a relative .deps).
deps=$(mkdir -p "$1" && cd "$1" && pwd)
version=$2
flavour=${3:-cpu}
ort="$deps/onnxruntime"
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# 1. Header, from Debian trixie (only the one package, downloaded and unpacked, never installed).
if [ ! -f "$ort/header/usr/include/onnxruntime/onnxruntime_c_api.h" ]; then
  say "fetching the ONNX Runtime C header (libonnxruntime-dev from Debian trixie)"
  apt_dir="$deps/apt-trixie"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/download"
  : > "$apt_dir/status"
  mirror=${FACESOCIAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg
  [ -f "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "deb [signed-by=$keyring] $mirror trixie main" > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Dir::State::status=$apt_dir/status"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get -qq "${apt_opts[@]}" update
  (cd "$apt_dir/download" && rm -f ./*.deb && apt-get -qq "${apt_opts[@]}" download libonnxruntime-dev)
  rm -rf "$ort/header"
  mkdir -p "$ort/header"
  dpkg-deb -x "$apt_dir/download"/libonnxruntime-dev_*.deb "$ort/header"
  rm -rf "$apt_dir/download"
fi

# 2. Library, from the pinned wheel (CPU or GPU build of the same version: the binary links to
#    the versioned symbol OrtGetApiBase@VERS_<version>, so both must be the same version).
stamp="$version-$flavour"
if [ ! -f "$ort/lib/VERSION" ] || [ "$(cat "$ort/lib/VERSION")" != "$stamp" ]; then
  package=onnxruntime
  [ "$flavour" = cuda ] && package=onnxruntime-gpu
  say "fetching $package==$version from PyPI"
  wheels="$deps/wheels-onnxruntime"
  rm -rf "$wheels" "${ort:?}/lib"
  mkdir -p "$wheels" "$ort/lib"
  # The wheels are tied to a CPython ABI but libonnxruntime.so is not; ask for one explicitly so
  # any local Python can fetch it.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$wheels" "$package==$version"
  # The C API library and its provider plugins; for the GPU build also the [cuda,cudnn] extras.
  python3 "$(dirname "$0")/ort_wheel_libs.py" "$wheels"/*.whl "$ort/lib" > "$wheels/nvidia-requirements.txt"
  real=$(cd "$ort/lib" && ls libonnxruntime.so.* | head -1)
  # The linker wants the plain name; the binary then records the SONAME (libonnxruntime.so.1).
  ln -sf "$real" "$ort/lib/libonnxruntime.so"
  soname=$(python3 -c "import sys; print(sys.argv[1].rsplit('.', 2)[0])" "$real")
  ln -sf "$real" "$ort/lib/$soname"

  # 3. GPU opt-in: the NVIDIA CUDA/cuDNN libraries the [cuda,cudnn] extras name, unpacked into a
  #    folder (never into a Python), so the server can put their lib folders on its library path.
  if [ "$flavour" = cuda ]; then
    say "fetching the NVIDIA libraries of ${package}[cuda,cudnn]==$version: $(tr '\n' ' ' < "$wheels/nvidia-requirements.txt")"
    rm -rf "$ort/nvidia"
    python3 -m pip install --quiet --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --target "$ort/nvidia" -r "$wheels/nvidia-requirements.txt"
    find "$ort/nvidia" -type d -name lib -path '*nvidia*' | sort > "$ort/lib/nvidia-lib-dirs.txt"
  fi
  rm -rf "$wheels"
  echo "$stamp" > "$ort/lib/VERSION"
fi
