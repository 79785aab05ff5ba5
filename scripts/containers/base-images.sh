#!/usr/bin/env bash
# Makes the base images the Dockerfiles build on, when the official ones cannot be pulled:
#   debian:bookworm-slim  -> localhost/debian:bookworm-slim, from Debian's own packages (debootstrap)
#   swift:<v>-bookworm    -> localhost/swift:<v>-bookworm, that base plus this machine's toolchain
# An official image that is present or can be pulled is used as it is. Cached: each local image
# carries a label with the key it was made from, and a second run with nothing changed only checks.
# Prints the build arguments to use (also written to $FACESOCIAL_CONTAINERS_CACHE/base-images.env):
#   scripts/containers/base-images.sh            # auto: official where it can be had, else local
#   FACESOCIAL_BASE_IMAGES=local scripts/containers/base-images.sh
#   scripts/containers/base-images.sh runtime    # the Debian base only (no Swift builder)
set -euo pipefail
source "$(dirname "$0")/env.sh"
mode=${FACESOCIAL_BASE_IMAGES:-auto}
swift_toolchain=${FACESOCIAL_SWIFT_TOOLCHAIN:-$(dirname "$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")")}
swift_version=$("$swift_toolchain/usr/bin/swift" --version 2>/dev/null | sed -n 's/.*Swift version \([0-9.]*\).*/\1/p' | head -1)
[ -n "$swift_version" ] || { echo "no Swift toolchain at $swift_toolchain (set FACESOCIAL_SWIFT_TOOLCHAIN)" >&2; exit 2; }
debian_mirror=${FACESOCIAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$FACESOCIAL_CONTAINERS_CACHE"
label=org.facesocial.base-key

# The key a local image was made from, or nothing.
image_key() { podman image inspect --format "{{index .Labels \"$label\"}}" "$1" 2>/dev/null || true; }

# Official image present or pullable -> its name; else empty.
official() {
  [ "$mode" = local ] && return 0
  if podman image exists "docker.io/library/$1" || podman pull --quiet "docker.io/library/$1" >/dev/null 2>&1; then
    echo "docker.io/library/$1"
  fi
}

make_debian() {
  local image=localhost/debian:bookworm-slim
  # Changing how the base is made changes the key, and so remakes it.
  local key
  key="bookworm-minbase-$(sed -n '/^make_debian()/,/^}/p' "$0" | sha256sum | cut -c1-16)"
  if [ "$(image_key "$image")" = "$key" ]; then echo "$image"; return; fi
  local root="$FACESOCIAL_CONTAINERS_CACHE/rootfs-bookworm"
  csay "making $image with debootstrap (about 75 s)"
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$debian_mirror" > "$FACESOCIAL_CONTAINERS_CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$FACESOCIAL_CONTAINERS_CACHE/debootstrap.log" >&2; exit 1; }
  # As the official slim image: updates and security sources, no docs, man pages or locales.
  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $debian_mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  cat > "$root/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
  # No package caches or translations left in image layers (the official image's apt settings).
  cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
  tar -C "$root" -c . | podman import --change "LABEL $label=$key" --change 'CMD ["bash"]' - "$image" >/dev/null
  rm -rf "$root"
  echo "$image"
}

make_swift() {
  local base=$1 image="localhost/swift:$swift_version-bookworm"
  local file="$containers_dir/swift-builder.Containerfile"
  local key
  local ca=/etc/ssl/certs/ca-certificates.crt
  key="$swift_version-$(cat "$file" "$ca" 2>/dev/null | sha256sum | cut -c1-16)-$(image_key "$base" | cut -c1-40)"
  if [ "$(image_key "$image")" = "$key" ]; then echo "$image"; return; fi
  csay "making $image from $base and the toolchain at $swift_toolchain"
  podman build --network host --build-arg "BASE_IMAGE=$base" --label "$label=$key" \
    -v "$swift_toolchain:/toolchain:ro" ${ca:+-v "$ca:/host-ca/ca-certificates.crt:ro"} -f "$file" -t "$image" "$containers_dir" >&2
  echo "$image"
}

debian=$(official debian:bookworm-slim)
[ -n "$debian" ] || debian=$(make_debian)
if [ "${1:-all}" = runtime ]; then
  swift=""
else
  swift=$(official "swift:$swift_version-bookworm")
  [ -n "$swift" ] || swift=$(make_swift "$debian")
  podman image exists "$swift"
fi
podman image exists "$debian"
{
  echo "RUNTIME_IMAGE=$debian"
  [ -z "$swift" ] || echo "SWIFT_IMAGE=$swift"
} | tee "$FACESOCIAL_CONTAINERS_CACHE/base-images.env"
