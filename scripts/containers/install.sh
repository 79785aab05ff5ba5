#!/usr/bin/env bash
# Installs what the container scripts use, from Debian's packages, when missing (idempotent):
# podman, buildah, runc (crun cannot run here, see containers.conf), debootstrap, podman-compose.
set -euo pipefail
source "$(dirname "$0")/env.sh"
packages=(podman buildah runc debootstrap podman-compose fuse-overlayfs slirp4netns uidmap
          netavark aardvark-dns openssl curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
csay "installing Debian packages: ${missing[*]}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
