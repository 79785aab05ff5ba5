#!/usr/bin/env bash
# The web console in a real browser (docs/console.md): headless Debian chromium through
# chromium-driver and selenium, against a debug server the tests start with their own data folder
# and bootstrap admin and stop at the end. Screenshots go to docs/console/.
#
#   tests/console/run.sh [--only NAME,...]
#
# FACESOCIAL_BIN picks the server binary (default: the debug build). Exits non-zero on any
# failure; the last line is `console: N passed, M failed`.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
say() { printf '\033[1;36m[console]\033[0m %s\n' "$*"; }

export FACESOCIAL_BIN=${FACESOCIAL_BIN:-$root/.build/debug/facesocial}
export FACESOCIAL_MODEL_DIR=${FACESOCIAL_MODEL_DIR:-$root/var/models}
export FACESOCIAL_MODEL_MANIFEST=${FACESOCIAL_MODEL_MANIFEST:-$root/models/manifest.json}
export FACESOCIAL_TESTDATA=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null || { echo "console: $tool is missing (scripts/setup.sh test installs chromium and chromium-driver)" >&2; exit 2; }
done
[ -x "$FACESOCIAL_BIN" ] || { echo "console: no server binary at $FACESOCIAL_BIN (swift build first)" >&2; exit 2; }

# selenium, pinned, in its own venv (git-ignored).
venv=$root/.venv-console
if ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  say "creating $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q selenium==4.43.0 || { echo "console: could not install selenium" >&2; exit 2; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/facesocial-console.XXXXXX")
# The server writes its pid to $work/pids (tests/reliability/common.py); stop it if the run is cut short.
cleanup() {
  if [ -f "$work/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null; done < "$work/pids"
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
say "server $FACESOCIAL_BIN, chromium $(chromium --version 2>/dev/null | awk '{print $2}'), work folder $work"
"$venv/bin/python" tests/console/test_console.py --work "$work" "$@"
rc=$?
if [ $rc -eq 0 ]; then rm -rf "$work"; else say "kept $work (server log in logs/, failure screenshots)"; fi
exit $rc
