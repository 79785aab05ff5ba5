#!/usr/bin/env bash
# The reliability suite (docs/reliability.md): load and soak, faults (Redis, PostgreSQL replica and
# primary, a corrupted model file, SIGTERM), bad input (malformed images, JSON, multipart, absurd
# parameters, hostile names), libFuzzer on the image decoders, schemathesis against /openapi.json and
# a privacy scan, then one summary table. Bounded in time:
#
#   scripts/reliability.sh smoke   # about 5 minutes on 2 cores (part of `make test`)
#   scripts/reliability.sh full    # about 10 minutes: five minutes of soak, longer fuzz and schemathesis
#   scripts/reliability.sh full --only load,primary   # some scenarios (names in tests/reliability/suite.py)
#
# Uses the release server (.build/release/facesocial, or FACESOCIAL_BIN) and the installed models;
# starts its own PostgreSQL primary + replica (scripts/test-services/postgres.sh), Redis and servers
# on 127.0.0.1 ports 18301-18313, all in one temporary folder that is removed on exit, even on failure.
# Python tools (schemathesis, Pillow) go into .venv-reliability with pinned versions.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=${1:-full}
shift || true
case $mode in smoke|full) ;; *) echo "usage: $0 [smoke|full] [--only a,b]" >&2; exit 2 ;; esac
say() { printf '\033[1;35m[reliability]\033[0m %s\n' "$*"; }

# Always its own PostgreSQL: the fault scenarios crash the primary, and a database that already has
# users (scripts/test.sh exports the one the Swift tests used) would keep the suite's admin from being
# created. So a PostgreSQL inherited from the caller is ignored.
unset FACESOCIAL_TEST_POSTGRES_URL FACESOCIAL_TEST_POSTGRES_REPLICA_URL FACESOCIAL_TEST_POSTGRES_DIR \
  FACESOCIAL_TEST_POSTGRES_REPLICA_DATA
# The release build when there is one (`make run` makes it); `make test` builds only the debug one.
if [ -z "${FACESOCIAL_BIN:-}" ]; then
  FACESOCIAL_BIN=$root/.build/release/facesocial
  [ -x "$FACESOCIAL_BIN" ] || FACESOCIAL_BIN=$root/.build/debug/facesocial
fi
# Servers run in their own folders: a relative path given by the caller would not resolve there.
FACESOCIAL_BIN=$(realpath -m "$FACESOCIAL_BIN")
export FACESOCIAL_BIN
export FACESOCIAL_MODEL_DIR=${FACESOCIAL_MODEL_DIR:-$root/var/models}
export FACESOCIAL_MODEL_MANIFEST=${FACESOCIAL_MODEL_MANIFEST:-$root/models/manifest.json}
export FACESOCIAL_TESTDATA=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
[ -x "$FACESOCIAL_BIN" ] || { echo "no server binary at $FACESOCIAL_BIN (scripts/setup.sh builds it)" >&2; exit 1; }
command -v redis-server >/dev/null || {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    service redis-server stop >/dev/null 2>&1 || true
  else
    echo "redis-server is missing (sudo apt-get install redis-server)" >&2; exit 1
  fi
}

venv=$root/.venv-reliability
export RELIABILITY_VENV=$venv
if ! "$venv/bin/python" -c 'import PIL, schemathesis' 2>/dev/null; then
  say "creating $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q schemathesis==4.32.5 pillow==13.0.0 ||
    { echo "could not install schemathesis and Pillow" >&2; exit 1; }
fi

work=$(mktemp -d /tmp/facesocial-reliability.XXXXXX)
pg_pid=
cleanup() {
  # The suite stops its own servers and Redis; after an interrupted run, what it started (their
  # ids are in $work/pids) is stopped here, checked by name so that a reused id is left alone.
  local pid
  for pid in $(cat "$work/pids" 2>/dev/null); do
    grep -qaE 'facesocial|redis-server' "/proc/$pid/cmdline" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  done
  [ -n "$pg_pid" ] && wait "$pg_pid" 2>/dev/null
  local pg_dir
  pg_dir=$(sed -n 's/^export FACESOCIAL_TEST_POSTGRES_DIR=//p' "$work/pg.env" "$work/pg.env.part" 2>/dev/null | head -1)
  [ -z "$pg_dir" ] && pg_dir=$(grep -o '/tmp/facesocial-pg\.[A-Za-z0-9]*' "$work/pg.log" 2>/dev/null | head -1)
  [ -n "$pg_dir" ] && scripts/test-services/postgres.sh stop "$pg_dir"
  if [ -n "${RELIABILITY_KEEP:-}" ]; then say "kept $work (logs, data; no image: the privacy scan checked)"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PostgreSQL (primary + streaming replica) starts in the background while the load scenario, which
# does not need it, runs; the suite waits for $work/pg.env before its first PostgreSQL scenario.
( scripts/test-services/postgres.sh start > "$work/pg.env.part" 2> "$work/pg.log" &&
  mv "$work/pg.env.part" "$work/pg.env" ) &
pg_pid=$!

# The smoke's scenarios take about 345 s on 2 cores since the Redis Cluster scenario (49 s) joined
# them; the bound leaves a slower machine a third more.
budget=$([ "$mode" = smoke ] && echo 480 || echo 1200)
say "$mode run of $FACESOCIAL_BIN ($(date -r "$FACESOCIAL_BIN" '+%F %T')), work folder $work, at most $budget s"
timeout --signal=INT --kill-after=30 "$budget" \
  "$venv/bin/python" tests/reliability/suite.py --mode "$mode" --work "$work" --json "$work/summary.json" "$@"
rc=$?
[ $rc = 124 ] && echo "the suite ran past its $budget s bound" >&2
[ -n "${RELIABILITY_JSON:-}" ] && cp "$work/summary.json" "$RELIABILITY_JSON" 2>/dev/null
exit $rc
