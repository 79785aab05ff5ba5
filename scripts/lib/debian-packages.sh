# Sourced by scripts/setup.sh and scripts/containers/install.sh:
#   install_missing_packages PACKAGE...
# installs from Debian whatever of those is not installed yet (as root, through sudo otherwise),
# and returns at once when nothing is missing. Servers are installed, not started: the tests start
# their own instances on free ports.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing_packages() {
  local missing=() p policy=/usr/sbin/policy-rc.d made_policy=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  printf '\033[1;34m[setup]\033[0m installing Debian packages: %s\n' "${missing[*]}" >&2
  as_root apt-get update -qq
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy"
    made_policy=1
  fi
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
  if [ -n "$made_policy" ]; then as_root rm -f "$policy"; fi
  return $rc
}
