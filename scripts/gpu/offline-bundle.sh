#!/usr/bin/env bash
# An offline bundle of the release server for a GPU host that has no network and no Swift
# toolchain: the stripped binary, the runtime libraries it loads (Swift, image codecs, OpenVINO,
# the GPU build of ONNX Runtime), the models and a few test photos, in one xz-compressed tar that
# is split into parts small enough to travel a few at a time.
#
#   scripts/gpu/offline-bundle.sh pack [--max-part-mib N] [--wheel FILE] [--out DIR]
#       on the build machine: writes DIR (default .gpu-bundle)/part01.. and MANIFEST
#   scripts/gpu/offline-bundle.sh unpack DIR [PARTS_DIR]
#       on the GPU host, once per transfer: copies the parts found in PARTS_DIR (default
#       .gpu-bundle) to DIR/parts, and extracts into DIR once all are there and verified
#   scripts/gpu/offline-bundle.sh env DIR
#       prints the exports that make DIR/bin/facesocial run: eval "$(... env DIR)"
#
# pack reads: FACESOCIAL_BIN (.build/release/facesocial), FACESOCIAL_MODEL_DIR (var/models),
# FACESOCIAL_MODEL_MANIFEST (models/manifest.json), FACESOCIAL_TESTDATA (../shared/testdata),
# ORT_GPU_WHEEL (the onnxruntime-gpu wheel; downloaded with pip when unset).
# env/unpack read FACESOCIAL_NVIDIA_ROOTS: folders searched first for the CUDA/cuDNN libraries.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
archive=fsgpu.tar.xz
say() { printf '\033[1;34m[bundle]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[bundle]\033[0m %s\n' "$*" >&2; exit 1; }

# Libraries the CUDA provider needs (readelf NEEDED of libonnxruntime_providers_cuda.so, plus what
# it and cuDNN open at run time) and the driver's, which the host must provide.
cuda_libs=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcufft.so.12 libcudnn.so.9
  libnvrtc.so.13 libnvJitLink.so.13)
driver_libs=(libcuda.so.1 libnvidia-ml.so.1)

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# pack

pack() {
  local max_mib=56 wheel=${ORT_GPU_WHEEL:-} out="$root/.gpu-bundle"
  while [ $# -gt 0 ]; do
    case $1 in
      --max-part-mib) max_mib=$2; shift 2 ;;
      --wheel) wheel=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  local bin=${FACESOCIAL_BIN:-$root/.build/release/facesocial}
  local models=${FACESOCIAL_MODEL_DIR:-$root/var/models}
  local manifest=${FACESOCIAL_MODEL_MANIFEST:-$root/models/manifest.json}
  local testdata=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
  local ovlib=$root/.deps/openvino/lib
  # Pinned in one place: the binary links to OrtGetApiBase@VERS_<version>.
  local version
  version=$(sed -n 's/^onnxruntime_version=//p' "$root/scripts/setup.sh")
  [ -x "$bin" ] || die "no binary at $bin (swift build -c release --product facesocial)"
  [ -d "$ovlib" ] || die "no OpenVINO in $ovlib (scripts/setup.sh)"
  readelf -V "$bin" | grep "VERS_$version" > /dev/null || die "$bin does not link to ONNX Runtime $version"

  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: work is local
  trap "rm -rf '$work'" EXIT
  local stage=$work/fsgpu
  mkdir -p "$stage"/{bin,lib,openvino/lib,onnxruntime/lib,models,testdata}

  # 1. The binary, stripped (a copy: the build's own keeps its debug info).
  say "binary: $bin"
  cp "$bin" "$stage/bin/facesocial"
  strip --strip-all "$stage/bin/facesocial"
  # Its resource bundle (the web console's files) beside it, where the server looks for it.
  cp -a "$(dirname "$bin")/FaceSocial_FaceSocialServer.resources" "$stage/bin/"

  # 2. Every library ldd resolves except glibc/libstdc++/libgcc/zlib (the host's must be used:
  #    they are ABI-stable and the host's other programs share them) and OpenVINO/ONNX Runtime
  #    (copied below from their own folders). --strip-unneeded keeps the dynamic symbols.
  local name path
  while read -r name path; do
    case $name in
      linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libdl.so.* | librt.so.* | libpthread.so.* | \
        libstdc++.so.* | libgcc_s.so.* | libz.so.*) continue ;;
    esac
    case $path in "$root"/.deps/*) continue ;; esac
    cp -L "$path" "$stage/lib/$name"
    chmod u+w "$stage/lib/$name"
    strip --strip-unneeded "$stage/lib/$name"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
  if ldd "$bin" | grep "not found" > /dev/null; then die "ldd: $(ldd "$bin" | grep 'not found')"; fi

  # 3. OpenVINO: the C API, the core, TBB, the CPU plugin, the AUTO/HETERO/BATCH plugins it probes,
  #    and the ONNX and IR frontends (it scans its folder for *_frontend.so). The Intel GPU/NPU
  #    plugins and the other frontends are left out: no Intel device there, no other format.
  say "OpenVINO from $ovlib"
  (cd "$ovlib" && cp -a libopenvino.so* libopenvino_c.so* libopenvino_intel_cpu_plugin.so \
    libopenvino_auto_plugin.so libopenvino_auto_batch_plugin.so libopenvino_hetero_plugin.so \
    libopenvino_onnx_frontend.so* libopenvino_ir_frontend.so* libtbb*.so* libhwloc.so* "$stage/openvino/lib/")
  for name in plugins.xml cache.json; do
    [ -e "$ovlib/$name" ] && cp -a "$ovlib/$name" "$stage/openvino/lib/"
  done
  [ -f "$root/.deps/openvino/VERSION" ] && cp "$root/.deps/openvino/VERSION" "$stage/openvino/"

  # 4. ONNX Runtime, GPU build: every libonnxruntime*.so* of the wheel's onnxruntime/capi (the C
  #    API library and the providers ORT opens from its own folder), laid out as
  #    scripts/lib/fetch_onnxruntime.sh does for FACESOCIAL_GPU=cuda.
  if [ -z "$wheel" ] || [ ! -f "$wheel" ]; then
    say "downloading onnxruntime-gpu==$version"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_28_x86_64 -d "$work/wheel" "onnxruntime-gpu==$version"
    wheel=$(ls "$work"/wheel/onnxruntime_gpu-*.whl)
  fi
  case $(basename "$wheel") in onnxruntime_gpu-"$version"-*) ;; *) die "$wheel is not onnxruntime_gpu $version" ;; esac
  say "ONNX Runtime from $wheel"
  python3 "$root/scripts/lib/ort_wheel_libs.py" "$wheel" "$stage/onnxruntime/lib" > /dev/null
  [ -f "$stage/onnxruntime/lib/libonnxruntime_providers_cuda.so" ] || die "$wheel has no CUDA provider"
  (cd "$stage/onnxruntime/lib" && ln -s "libonnxruntime.so.$version" libonnxruntime.so \
    && ln -s "libonnxruntime.so.$version" libonnxruntime.so.1)
  echo "$version-cuda" > "$stage/onnxruntime/lib/VERSION"
  # nvidia-lib-dirs.txt is written on the host by `unpack`: only it knows where CUDA lives.

  # 5. Models, laid out as `facesocial models pull` installs them, checked against the manifest.
  say "models from $models"
  cp "$manifest" "$stage/manifest.json"
  (cd "$models" && cp -a . "$stage/models/")
  chmod -R u+w "$stage/models"
  python3 - "$manifest" "$stage/models" << 'PY'
import hashlib, json, os, sys
manifest, models = sys.argv[1], sys.argv[2]
for m in json.load(open(manifest))["models"]:
    path = os.path.join(models, m["file"])
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != m["sha256"]:
        sys.exit(f"{path}: sha256 {digest} != manifest {m['sha256']}")
PY

  # 6. Test photos: those `bench engines` and the GPU check read, plus the folder's README/licence.
  local photos
  photos=$(grep -ohE '[A-Za-z0-9_-]+\.(jpg|jpeg|png)' "$root/Sources/facesocial/BenchEnginesCommand.swift" \
    "$root/scripts/gpu/check-onnxruntime.sh" | sort -u)
  for name in $photos README.md LICENSE-face_recognition-examples.txt; do
    [ -f "$testdata/$name" ] && cp "$testdata/$name" "$stage/testdata/"
  done
  [ -f "$stage/testdata/two_people.jpg" ] || die "no test photos in $testdata"
  chmod -R u+w "$stage/testdata"

  {
    echo "commit $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "binary-sha256 $(sha256sum "$bin" | cut -d' ' -f1)"
    echo "onnxruntime $(basename "$wheel") $(sha256sum "$wheel" | cut -d' ' -f1)"
    echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } > "$stage/BUNDLE-INFO"

  # 7. One xz stream (a single stream compresses best; xz is the format a bare host can read:
  #    xz, or Python's lzma), split into parts; MANIFEST lists the archive and the parts.
  say "compressing (xz -9e, single-threaded for the best ratio; minutes)"
  tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - fsgpu \
    | xz -9e -T1 > "$work/$archive"
  mkdir -p "$out"
  rm -f "$out"/part[0-9]* "$out/MANIFEST"
  split -b "${max_mib}M" --numeric-suffixes=1 -a 2 "$work/$archive" "$out/part"
  {
    echo "archive $(sha256sum "$work/$archive" | cut -d' ' -f1) $(stat -c %s "$work/$archive") $archive"
    for path in "$out"/part*; do
      echo "part $(sha256sum "$path" | cut -d' ' -f1) $(stat -c %s "$path") $(basename "$path")"
    done
  } > "$out/MANIFEST"
  say "staged $(du -sh "$stage" | cut -f1), archive $(stat -c %s "$work/$archive") bytes:"
  (cd "$out" && ls -l MANIFEST part*) >&2
}

# ---------------------------------------------------------------------------------------------
# unpack

# Decompresses stdin: xz where installed, else Python's lzma module (a bare host has Python).
unxz_stream() {
  if xz --version > /dev/null 2>&1; then xz -dc; return; fi
  local py
  for py in python3 /opt/torch/.venv/bin/python3 python; do
    if command -v "$py" > /dev/null && "$py" -c 'import lzma' 2> /dev/null; then
      "$py" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1 << 20)'
      return
    fi
  done
  die "neither xz nor Python's lzma is available to decompress"
}

# manifest_field KIND NAME FIELD: the sha256 (2) or size (3) of a MANIFEST line.
manifest_field() { awk -v k="$1" -v n="$2" -v f="$3" '$1 == k && $4 == n { print $f }' "$4"; }

unpack() {
  [ $# -ge 1 ] || usage
  local dir=$1 src=${2:-$root/.gpu-bundle}
  local parts=$dir/parts
  mkdir -p "$parts"
  # A MANIFEST for another archive means a new bundle: forget the old parts and extraction.
  if [ -f "$src/MANIFEST" ]; then
    if [ -f "$parts/MANIFEST" ] && ! cmp -s "$src/MANIFEST" "$parts/MANIFEST"; then
      say "new bundle: discarding the parts and files of the previous one"
      rm -rf "$parts" "$dir/.complete"
      mkdir -p "$parts"
    fi
    cp "$src/MANIFEST" "$parts/MANIFEST"
  fi
  local manifest=$parts/MANIFEST want sum path name
  if [ -f "$dir/.complete" ] && [ -f "$manifest" ] && [ "$(cat "$dir/.complete")" = "$(manifest_field archive "$archive" 2 "$manifest")" ]; then
    say "$dir already holds this bundle"
    write_nvidia_dirs "$dir"
    return
  fi
  # Copy what this transfer brought, checked against MANIFEST when there is one.
  for path in "$src"/part[0-9]*; do
    [ -f "$path" ] || continue
    name=$(basename "$path")
    if [ -f "$manifest" ]; then
      want=$(manifest_field part "$name" 2 "$manifest")
      [ -n "$want" ] || { say "$name is not in MANIFEST: skipped"; continue; }
      if [ -f "$parts/$name" ] && [ "$(sha256sum < "$parts/$name" | cut -d' ' -f1)" = "$want" ]; then continue; fi
      sum=$(sha256sum < "$path" | cut -d' ' -f1)
      [ "$sum" = "$want" ] || { say "$name: sha256 $sum, MANIFEST says $want: skipped (damaged?)"; continue; }
    fi
    cp "$path" "$parts/$name.tmp" && mv "$parts/$name.tmp" "$parts/$name"
    say "received $name ($(stat -c %s "$parts/$name") bytes)"
  done
  [ -f "$manifest" ] || { say "no MANIFEST yet (carry .gpu-bundle/MANIFEST): parts kept in $parts"; return; }

  local missing=() all=()
  while read -r name; do
    all+=("$parts/$name")
    [ -f "$parts/$name" ] || missing+=("$name")
  done < <(awk '$1 == "part" { print $4 }' "$manifest")
  if [ ${#missing[@]} -gt 0 ]; then
    say "have $((${#all[@]} - ${#missing[@]}))/${#all[@]} parts; waiting for: ${missing[*]}"
    return
  fi
  want=$(manifest_field archive "$archive" 2 "$manifest")
  sum=$(cat "${all[@]}" | sha256sum | cut -d' ' -f1)
  [ "$sum" = "$want" ] || die "the joined parts have sha256 $sum, MANIFEST says $want"
  say "all ${#all[@]} parts present and verified: extracting into $dir"
  # Extract next to DIR and swap in, so a failure leaves no half-written tree behind.
  local tmp=$dir/.extract
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cat "${all[@]}" | unxz_stream | tar -C "$tmp" -xf -
  for name in bin lib openvino onnxruntime models testdata manifest.json BUNDLE-INFO; do
    rm -rf "${dir:?}/$name"
    mv "$tmp/fsgpu/$name" "$dir/$name"
  done
  rm -rf "$tmp"
  cp "$manifest" "$dir/MANIFEST"
  echo "$want" > "$dir/.complete"
  rm -f "$parts"/part[0-9]*
  write_nvidia_dirs "$dir"
  say "ready: eval \"\$($0 env $dir)\"; $dir/bin/facesocial --help"
}

# ---------------------------------------------------------------------------------------------
# env

# The folders holding the CUDA/cuDNN/driver libraries on this host, one per line: for each
# library, the first folder of FACESOCIAL_NVIDIA_ROOTS (then the whole root filesystem) that holds
# it. The driver's libraries are looked for only where the loader would not find them already
# (ldconfig's cache, LD_LIBRARY_PATH), and never in a CUDA forward-compatibility folder, whose
# libcuda must not be mixed with the host's kernel driver. The loader's default folders are left
# out: it searches them anyway.
find_nvidia_dirs() {
  local roots lib found r dir dirs
  read -r -a roots <<< "${FACESOCIAL_NVIDIA_ROOTS:-/opt/torch/.venv /usr/local/nvidia /usr/local/cuda /opt /usr/local}"
  for lib in "${cuda_libs[@]}" "${driver_libs[@]}"; do
    if [[ " ${driver_libs[*]} " == *" $lib "* ]]; then
      ldconfig -p 2> /dev/null | grep " $lib " > /dev/null && continue
      found=""
      dirs=${LD_LIBRARY_PATH:-}
      for dir in ${dirs//:/ }; do [ -e "$dir/$lib" ] && found=1; done
      [ -n "$found" ] && continue
    fi
    found=""
    for r in "${roots[@]}" /; do
      [ -d "$r" ] || continue
      found=$(find "$r" -xdev -name "$lib" \( -type f -o -type l \) -not -path '*/compat/*' -print -quit 2> /dev/null)
      [ -n "$found" ] && break
    done
    if [ -z "$found" ]; then
      ldconfig -p 2> /dev/null | grep " $lib " > /dev/null || printf '%s\n' "missing: $lib" >&2
      continue
    fi
    dirname "$found"
  done | awk '!/^\/(usr\/)?lib(64|\/x86_64-linux-gnu)?$/ && !seen[$0]++'
}

write_nvidia_dirs() {
  local list=$1/onnxruntime/lib/nvidia-lib-dirs.txt
  find_nvidia_dirs > "$list.tmp" 2> "$1/onnxruntime/lib/nvidia-missing.txt"
  mv "$list.tmp" "$list"
  say "NVIDIA library folders: $(paste -sd' ' "$list")"
  [ -s "$1/onnxruntime/lib/nvidia-missing.txt" ] && say "$(paste -sd' ' "$1/onnxruntime/lib/nvidia-missing.txt")"
  return 0
}

env_cmd() {
  [ $# -eq 1 ] || usage
  local dir
  dir=$(cd "$1" && pwd)
  [ -f "$dir/.complete" ] && [ -x "$dir/bin/facesocial" ] || die "$dir holds no complete bundle (run unpack)"
  local list=$dir/onnxruntime/lib/nvidia-lib-dirs.txt
  [ -f "$list" ] || write_nvidia_dirs "$dir"
  # LD_LIBRARY_PATH is searched before the binary's RUNPATH (/opt/swift/..., /work/main/.deps/...),
  # so the bundle's libraries win even where those folders exist.
  local path="$dir/lib:$dir/onnxruntime/lib:$dir/openvino/lib"
  [ -s "$list" ] && path="$path:$(paste -sd: "$list")"
  # shellcheck disable=SC2016 # the host's own LD_LIBRARY_PATH is appended where this is eval'ed
  printf 'export LD_LIBRARY_PATH=%q${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n' "$path"
  printf 'export FACESOCIAL_BIN=%q\n' "$dir/bin/facesocial"
  printf 'export FACESOCIAL_MODEL_DIR=%q\n' "$dir/models"
  printf 'export FACESOCIAL_MODEL_MANIFEST=%q\n' "$dir/manifest.json"
  printf 'export FACESOCIAL_TESTDATA=%q\n' "$dir/testdata"
  printf 'export ORT_LIB_DIR=%q\n' "$dir/onnxruntime/lib"
  # CUDA numbers GPUs as NVML does (docs/gpu.md: CUDA.N is CUDA ordinal N).
  echo 'export CUDA_DEVICE_ORDER=PCI_BUS_ID'
}

case ${1:-} in
  pack) shift; pack "$@" ;;
  unpack) shift; unpack "$@" ;;
  env) shift; env_cmd "$@" ;;
  *) usage ;;
esac
