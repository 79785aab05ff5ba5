#!/usr/bin/env bash
# Builds a FaceSocial image with podman from the repository's Dockerfiles, unchanged: base images
# come from base-images.sh through the Dockerfiles' own build arguments, and the Swift packages from
# wherever this machine's git reads github.com (its `url.*.insteadof` settings, mounted read-only
# into the build), so the same Dockerfile still builds with Docker on a machine that reaches GitHub.
#   scripts/containers/build-image.sh cpu [TAG]   # deploy/docker/Dockerfile      -> facesocial:TAG
#   scripts/containers/build-image.sh gpu [TAG]   # deploy/docker/Dockerfile.gpu  -> facesocial:TAG-gpu
#   FACESOCIAL_PREBUILT_BIN=.build/debug/facesocial scripts/containers/build-image.sh cpu TAG
#       the same runtime stage around a binary built on this host (no Swift build in the image:
#       `--build-context bundle=…`); a binary not linked with --static-swift-stdlib brings the
#       toolchain's Swift runtime libraries along.
# Prints "image=… size_mb=… seconds=…" last.
set -euo pipefail
source "$(dirname "$0")/env.sh"
root=$(cd "$containers_dir/../.." && pwd)
cd "$root"
flavour=${1:-cpu}
tag=${2:-dev}
prebuilt_bin=${FACESOCIAL_PREBUILT_BIN:-}
SWIFT_IMAGE=""
eval "$("$containers_dir/base-images.sh" "$([ -n "$prebuilt_bin" ] && echo runtime || echo all)")"
case "$flavour" in
  cpu) file=deploy/docker/Dockerfile; image=localhost/facesocial:$tag
       args=(--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")
       [ -n "$SWIFT_IMAGE" ] && args+=(--build-arg "SWIFT_IMAGE=$SWIFT_IMAGE") ;;
  # No CUDA base can be pulled here: the local Debian base stands in (the CUDA libraries come from
  # the onnxruntime-gpu wheel's extras either way), with its package names for the same libraries.
  gpu) file=deploy/docker/Dockerfile.gpu; image=localhost/facesocial:$tag-gpu
       args=(--build-arg "SWIFT_IMAGE=$SWIFT_IMAGE")
       if ! podman image exists docker.io/nvidia/cuda:13.0.0-base-ubuntu24.04; then
         args+=(--build-arg "CUDA_IMAGE=$RUNTIME_IMAGE" --build-arg "RUNTIME_PACKAGES=libturbojpeg0 libpng16-16 libwebp7 libheif1")
       fi ;;
  *) echo "usage: $0 cpu|gpu [TAG]" >&2; exit 2 ;;
esac

# The models the image installs come from var/models (filled by `make setup`); where it is not
# filled yet, the manifest's files are taken from the model mirror and checked in the build. A
# model whose licence needs an opt-in is copied only when FACESOCIAL_ACCEPT_MODEL_LICENCES lists
# it, as `facesocial models pull` decides (var/models is the developer's own install).
mirror=${FACESOCIAL_MODEL_MIRROR:-$root/../shared/models}
python3 - "$root/models/manifest.json" "$mirror" "$root/var/models" "${FACESOCIAL_ACCEPT_MODEL_LICENCES:-}" <<'PY'
import json, os, shutil, sys
manifest, mirror, dest, accepted = sys.argv[1:]
accepted = {word.strip() for word in accepted.split(",") if word.strip()}
for entry in json.load(open(manifest))["models"]:
    if entry.get("licence_opt_in") and entry["licence_opt_in"] not in accepted:
        continue
    target = os.path.join(dest, entry["file"])
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(mirror, entry["file"]), target)
PY

if [ -n "$prebuilt_bin" ]; then
  [ "$flavour" = cpu ] || { echo "a prebuilt binary goes into the CPU image only" >&2; exit 2; }
  pre="$FACESOCIAL_CONTAINERS_CACHE/prebuilt"
  rm -rf "$pre" && mkdir -p "$pre/out/bin" "$pre/out/lib"
  cp "$prebuilt_bin" "$pre/out/bin/facesocial"
  # Its resource bundle (the web console) lives beside it in the build folder.
  cp -a "$(dirname "$prebuilt_bin")/FaceSocial_FaceSocialServer.resources" "$pre/out/bin/"
  cp -a .deps/openvino/lib/. .deps/onnxruntime/lib/. "$pre/out/lib/"
  ldd "$prebuilt_bin" | awk '$3 ~ /\/usr\/lib\/swift\// {print $3}' | xargs -r cp -L -t "$pre/out/lib/"
  args+=(--build-context "bundle=$pre")
fi

# git's github.com redirections of this machine, as a system gitconfig for the build.
mounts=()
gitconfig="$FACESOCIAL_CONTAINERS_CACHE/gitconfig"
: > "$gitconfig"
while read -r key value; do
  target=${key#url.}
  target=${target%.insteadof}
  git config -f "$gitconfig" --add "url.$target.insteadOf" "$value"
  [ -d "$target" ] && mounts+=(-v "$target:$target:ro")
done < <(git config --system --get-regexp '^url\..*\.insteadof$' || true)
[ -s "$gitconfig" ] && mounts+=(-v "$gitconfig:/etc/gitconfig:ro")
# One mount per folder, however many addresses point at it.
mapfile -t mounts < <(printf '%s\n' "${mounts[@]}" | awk 'NR%2==1{flag=$0; next} !seen[$0]++{print flag; print $0}')

csay "building $image from $file (${args[*]})"
start=$(date +%s)
# Docker image format: OCI has no HEALTHCHECK, and podman would drop it.
podman build --format docker --network host --ignorefile "$file.dockerignore" "${args[@]}" "${mounts[@]}" \
  ${FACESOCIAL_BUILD_OPTS:-} -f "$file" -t "$image" . >&2
seconds=$(( $(date +%s) - start ))
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image=$image size_mb=$(( size / 1000000 )) seconds=$seconds"
