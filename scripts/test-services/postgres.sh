#!/usr/bin/env bash
# A throw-away PostgreSQL 15 primary with one streaming replica (pg_basebackup -R), on loopback
# and free ports, in a temporary folder, for the tests.
#
#   eval "$(scripts/test-services/postgres.sh start)"   # prints the exports below
#   scripts/test-services/postgres.sh stop "$FACESOCIAL_TEST_POSTGRES_DIR"
#
# Exports: FACESOCIAL_TEST_POSTGRES_URL (primary), FACESOCIAL_TEST_POSTGRES_REPLICA_URL,
# FACESOCIAL_TEST_POSTGRES_DIR, FACESOCIAL_TEST_POSTGRES_REPLICA_DATA, FACESOCIAL_TEST_PG_CTL and
# FACESOCIAL_TEST_POSTGRES_USER (tests stop and start the replica with them).
# PostgreSQL refuses to run as root, so as root the servers run as the `postgres` user.
set -euo pipefail

bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
log() { printf '[postgres] %s\n' "$*" >&2; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  if [ ! -x "$bin/initdb" ]; then
    log "installing postgresql-15"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >&2
    else
      echo "postgresql-15 is not installed (run scripts/setup.sh as root)" >&2; exit 1
    fi
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  local dir primary replica primary_port replica_port
  dir=$(mktemp -d /tmp/facesocial-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  primary="$dir/primary"; replica="$dir/replica"
  primary_port=$(free_port); replica_port=$(free_port)
  while [ "$replica_port" = "$primary_port" ]; do replica_port=$(free_port); done
  local password=facesocial-test

  echo "$password" > "$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown postgres "$dir/pwfile"
  as_owner "$bin/initdb" -D "$primary" -U facesocial --pwfile="$dir/pwfile" -A scram-sha-256 \
    --no-instructions >"$dir/initdb.log" 2>&1
  cat >>"$primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
synchronous_commit = on
full_page_writes = off
CONF
  echo "host replication facesocial 127.0.0.1/32 scram-sha-256" >>"$primary/pg_hba.conf"
  as_owner "$bin/pg_ctl" -D "$primary" -l "$dir/primary.log" -w -t 60 start >&2
  as_owner env PGPASSWORD="$password" "$bin/createdb" -h 127.0.0.1 -p "$primary_port" -U facesocial facesocial

  # The replica: a base backup of the primary that streams from it (-R writes the settings). A fast
  # checkpoint: the default spread one made every start wait about 90 s on an idle primary.
  as_owner env PGPASSWORD="$password" "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U facesocial \
    -D "$replica" -R -X stream --checkpoint=fast >"$dir/basebackup.log" 2>&1
  cat >>"$replica/postgresql.conf" <<CONF
port = $replica_port
unix_socket_directories = '$dir'
CONF
  as_owner "$bin/pg_ctl" -D "$replica" -l "$dir/replica.log" -w -t 60 start >&2

  echo "export FACESOCIAL_TEST_POSTGRES_DIR=$dir"
  echo "export FACESOCIAL_TEST_POSTGRES_URL=postgres://facesocial:$password@127.0.0.1:$primary_port/facesocial?sslmode=disable"
  echo "export FACESOCIAL_TEST_POSTGRES_REPLICA_URL=postgres://facesocial:$password@127.0.0.1:$replica_port/facesocial?sslmode=disable"
  echo "export FACESOCIAL_TEST_POSTGRES_REPLICA_DATA=$replica"
  echo "export FACESOCIAL_TEST_PG_CTL=$bin/pg_ctl"
  echo "export FACESOCIAL_TEST_POSTGRES_USER=$([ "$(id -u)" = 0 ] && echo postgres || id -un)"
  log "primary on 127.0.0.1:$primary_port, replica on 127.0.0.1:$replica_port ($dir)"
}

# A node a test froze (SIGSTOP) acts on no signal of pg_ctl's: continue the postmaster and its
# children first (an interrupted frozen-primary scenario would leave them stopped for good).
continue_node() {
  local pid stat line rest
  pid=$(head -1 "$1/postmaster.pid" 2>/dev/null) || return 0
  kill -CONT "$pid" 2>/dev/null || true
  for stat in /proc/[0-9]*/stat; do
    read -r line < "$stat" 2>/dev/null || continue
    rest=${line##*) }  # after "pid (comm) ": state, ppid, ...
    read -r _ ppid _ <<< "$rest"
    if [ "$ppid" = "$pid" ]; then kill -CONT "${stat//[!0-9]/}" 2>/dev/null || true; fi
  done
}

stop() {
  local dir=${1:-${FACESOCIAL_TEST_POSTGRES_DIR:-}}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  for node in replica primary; do
    if [ -f "$dir/$node/postmaster.pid" ]; then
      continue_node "$dir/$node"
      as_owner "$bin/pg_ctl" -D "$dir/$node" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  rm -rf "$dir"
  log "stopped and removed $dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop [dir]" >&2; exit 2 ;;
esac
