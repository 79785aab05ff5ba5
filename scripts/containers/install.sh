#!/usr/bin/env bash
# Installs what the container scripts use, from Debian's packages, when missing (idempotent):
# podman, buildah, runc (crun cannot run here, see containers.conf), debootstrap, podman-compose,
# and iptables, which netavark (podman's network backend) runs for every network it sets up.
set -euo pipefail
source "$(dirname "$0")/env.sh"
packages=(podman buildah runc debootstrap podman-compose fuse-overlayfs slirp4netns uidmap
          netavark aardvark-dns iptables openssl curl)
source "$containers_dir/../lib/debian-packages.sh"
install_missing_packages "${packages[@]}"

