# Sourced by the container scripts: podman/buildah read their settings from containers.conf here
# (runc, cgroupfs, ulimits within the host's hard limits), unless the caller names its own.
containers_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$containers_dir/containers.conf}
# Build caches and scratch space of the container scripts, never in git (.build-* is ignored).
export FACESOCIAL_CONTAINERS_CACHE=${FACESOCIAL_CONTAINERS_CACHE:-$(cd "$containers_dir/../.." && pwd)/.build-containers}
csay() { printf '\033[1;35m[containers]\033[0m %s\n' "$*" >&2; }
