#!/usr/bin/env bash
# Backup and recovery, measured: a throwaway PostgreSQL cluster with WAL archiving,
# scripts/backup.sh, then the database destroyed and brought back by scripts/restore.sh both to a
# point in time (PITR) and from the pg_dump; prints the restore times (RTO) and the data lost
# (RPO). Part A uses a plain table and always runs; part B enrols people through the server's
# galleries (/v1/collections) on PostgreSQL and checks identify finds the same people after each
# restore; it skips with a message (exit 77) until the server has galleries and PostgreSQL support.
#   test_backup.sh [all|table|galleries]
set -euo pipefail
mode=${1:-all}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
say() { printf '\033[1;35m[backup]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[backup] FAIL:\033[0m %s\n' "$*"; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pgbin" ] || fail "PostgreSQL server binaries are missing (apt-get install postgresql)"
export PATH="$pgbin:$PATH"

T=$(mktemp -d /tmp/facesocial-backup.XXXXXX)
chmod 755 "$T"
# PostgreSQL refuses to run as root: run as the postgres user then.
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$T"; as_pg=(runuser -u postgres --); fi
# Three free ports in a row (PostgreSQL, the server, Redis) unless BACKUP_TEST_PORT names the first:
# a fixed port could be taken by whatever else runs on the machine.
free_ports() {
  python3 -c '
import random, socket
for _ in range(100):
    base, socks = random.randrange(20000, 60000), []
    try:
        for i in range(3):
            socks.append(socket.socket())
            socks[-1].bind(("127.0.0.1", base + i))
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
'
}
port=${BACKUP_TEST_PORT:-$(free_ports)}
export PGHOST="$T/sock" PGPORT=$port PGUSER=postgres PGDATABASE=facesocial
export BACKUP_DIR="$T/backups" WAL_ARCHIVE_DIR="$T/wal" FACESOCIAL_MODEL_MANIFEST="$root/models/manifest.json"
server_pid=""
pg() { "${as_pg[@]}" env PATH="$PATH" PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" PGDATABASE="$PGDATABASE" \
       BACKUP_DIR="$BACKUP_DIR" WAL_ARCHIVE_DIR="$WAL_ARCHIVE_DIR" FACESOCIAL_MODEL_MANIFEST="$FACESOCIAL_MODEL_MANIFEST" "$@"; }
sql() { pg psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then  # what PostgreSQL said, before the directory goes
    for f in "$T/pg.log" "$T/pg/restore.log"; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
  fi
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [ -f "$T/pg/postmaster.pid" ] && pg pg_ctl -D "$T/pg" -m immediate stop >/dev/null 2>&1
  if [ -n "${KEEP_DEPLOY_TMP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

pg mkdir -p "$T/sock" "$T/wal" "$T/backups"
pg initdb -D "$T/pg" -U postgres --auth=trust >/dev/null
cat >> "$T/pg/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$T/sock'
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $T/wal/%f && cp %p $T/wal/%f'
archive_timeout = 60
max_wal_senders = 3
CONF
start_pg() { pg pg_ctl -D "$T/pg" -l "$T/pg.log" -w start >/dev/null; }
destroy_pg() { pg pg_ctl -D "$T/pg" -m immediate stop >/dev/null; rm -rf "$T/pg"; }
# Archive the current WAL segment and wait until the archiver has it (what archive_timeout does).
flush_wal() {
  local seg; seg=$(sql "select pg_walfile_name(pg_switch_wal())")
  for _ in $(seq 100); do [ -f "$T/wal/$seg" ] && return; sleep 0.1; done
  fail "WAL segment $seg was not archived"
}
timed() { local t0; t0=$(date +%s%N); "$@" >&2; awk -v ns=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.2f\n", ns / 1e9 }'; }
start_pg
pg createdb facesocial

# --- part A: a plain table ----------------------------------------------------------------------
if [ "$mode" != galleries ]; then
# Redis alongside, when installed: its snapshot must come back too.
redis_port=$((port + 2)) redis_pid=""
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  mkdir -p "$T/redis"; chmod 777 "$T/redis"
  redis-server --port $redis_port --bind 127.0.0.1 --dir "$T/redis" --save '' --daemonize no > "$T/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p $redis_port ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p $redis_port set facesocial:backup-probe kept >/dev/null
  export REDIS_URL=redis://127.0.0.1:$redis_port/0
fi
sql "create table people (id serial primary key, name text not null, phase text not null)"
sql "insert into people (name, phase) select 'p' || g, 'before-backup' from generate_series(1, 5000) g"
pg env ${REDIS_URL:+REDIS_URL=$REDIS_URL} "$root/scripts/backup.sh"
b=$(ls -d "$T"/backups/20*Z | tail -1)
for f in db.dump base.tar.gz manifest.json SHA256SUMS wal_start ${redis_pid:+redis.rdb}; do [ -f "$b/$f" ] || fail "backup lacks $f"; done
sql "insert into people (name, phase) select 'q' || g, 'after-backup' from generate_series(1, 300) g"
sleep 1.1
target=$(sql "select now()")
sleep 1.1
sql "insert into people (name, phase) select 'r' || g, 'after-target' from generate_series(1, 200) g"
flush_wal
destroy_pg
say "database destroyed; point-in-time restore to $target"
rto_pitr=$(timed pg "$root/scripts/restore.sh" --from="$b" --mode=pitr --pgdata="$T/pg" --wal-archive="$T/wal" \
  --target-time="$target" --start)
got=$(sql "select phase || '=' || count(*) from people group by phase order by phase" | tr '\n' ' ')
[ "$got" = "after-backup=300 before-backup=5000 " ] || fail "PITR restored '$got'"
say "PITR: rows up to the target time back, none after it ($got) in ${rto_pitr}s"
# Clean second timeline for the dump restore: drop and recreate the database, then pg_restore.
pg dropdb facesocial && pg createdb facesocial
rto_dump=$(timed pg "$root/scripts/restore.sh" --from="$b" --mode=dump)
got=$(sql "select phase || '=' || count(*) from people group by phase order by phase" | tr '\n' ' ')
[ "$got" = "before-backup=5000 " ] || fail "dump restored '$got'"
say "dump: the backup's rows back ($got) in ${rto_dump}s"
if [ -n "$redis_pid" ]; then
  kill $redis_pid; wait $redis_pid 2>/dev/null; redis_pid=""
  rm -f "$T/redis/dump.rdb"
  pg "$root/scripts/restore.sh" --from="$b" --mode=redis --redis-rdb="$T/redis/dump.rdb" >/dev/null
  redis-server --port $redis_port --bind 127.0.0.1 --dir "$T/redis" --dbfilename dump.rdb --save '' > "$T/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p $redis_port ping >/dev/null 2>&1 && break; sleep 0.1; done
  [ "$(redis-cli -p $redis_port get facesocial:backup-probe)" = kept ] || fail "Redis snapshot did not restore"
  kill $redis_pid; wait $redis_pid 2>/dev/null; redis_pid=""
  say "Redis: snapshot restored (probe key back)"
fi
printf 'RESULT backup-restore: PITR restore %.2f s, pg_dump restore %.2f s (5,000-row table)\n' "$rto_pitr" "$rto_dump"
fi
[ "$mode" = table ] && exit 0
skip=0; [ "$mode" = galleries ] && skip=77

# --- part B: galleries through the server -------------------------------------------------------
bin=${FACESOCIAL_BIN:-$root/.build/release/facesocial}
testdata=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
sport=$((port + 1))
serve() {
  # Migrations first where the build has the subcommand (idempotent; a no-op after a restore).
  if "$bin" help migrate >/dev/null 2>&1; then
    env DATABASE_URL="postgres://postgres@127.0.0.1:$port/facesocial" FACESOCIAL_DATA_DIR="$T/data" \
      "$bin" migrate >> "$T/server.log" 2>&1 || true
  fi
  # Gallery routes need a principal: a first admin is created on the first start (and restored
  # with the database).
  env FACESOCIAL_PORT=$sport FACESOCIAL_HOST=127.0.0.1 FACESOCIAL_DATA_DIR="$T/data" \
    DATABASE_URL="postgres://postgres@127.0.0.1:$port/facesocial" \
    FACESOCIAL_ADMIN_EMAIL=backup@example.com FACESOCIAL_ADMIN_PASSWORD=backup-test-password \
    FACESOCIAL_MODEL_DIR="${FACESOCIAL_MODEL_DIR:-$root/var/models}" \
    FACESOCIAL_MODEL_MANIFEST="$root/models/manifest.json" "$bin" serve >> "$T/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$sport/health/ready)" = 200 ] && return 0
    kill -0 $server_pid 2>/dev/null || { server_pid=""; return 1; }
    sleep 0.2
  done
  return 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
mkdir -p "$T/data"
pg dropdb facesocial && pg createdb facesocial
if [ ! -x "$bin" ] || ! serve; then
  say "SKIP part B: the server does not start on PostgreSQL yet (DATABASE_URL=postgres://...); see $T/server.log"
  tail -3 "$T/server.log" 2>/dev/null || true
  exit $skip
fi
token=$(curl -s -H 'Content-Type: application/json' \
  -d '{"email":"backup@example.com","password":"backup-test-password"}' 127.0.0.1:$sport/v1/auth/login |
  python3 -c 'import json,sys; print(json.load(sys.stdin).get("data", {}).get("access_token", ""))')
api() { curl -s -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
code=$(curl -s -H "Authorization: Bearer $token" -o /dev/null -w '%{http_code}' 127.0.0.1:$sport/v1/collections)
if [ "$code" = 404 ]; then
  say "SKIP part B: no /v1/collections in this server yet (galleries feature)"
  exit $skip
fi
base=http://127.0.0.1:$sport/v1/collections
cid=$(api -d '{"name":"backup-test"}' $base | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
declare -A enrol=([obama]=obama.jpg [biden]=biden.jpg [kit]=kit_harington_john1.jpeg [rose]=rose_leslie_img1.jpg)
declare -A probe=([obama]=obama2.jpg [biden]=biden_biden2.jpg [kit]=kit_harington_john2.jpeg [rose]=rose_leslie_img2.jpg)
for who in "${!enrol[@]}"; do
  sid=$(api -d "{\"external_id\":\"$who\"}" $base/$cid/subjects | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
  c=$(curl -s -H "Authorization: Bearer $token" -o /dev/null -w '%{http_code}' -F image=@"$testdata/${enrol[$who]}" $base/$cid/subjects/$sid/faces)
  [[ $c == 20? ]] || fail "enrol $who -> $c"
done
identify_all() {
  local who found out=""
  for who in $(printf '%s\n' "${!probe[@]}" | sort); do
    found=$(curl -s -H "Authorization: Bearer $token" -F image=@"$testdata/${probe[$who]}" $base/$cid/identify | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
m = [c for f in d["faces"] for c in f["matches"] if c["is_match"]]
print(max(m, key=lambda c: c["similarity"])["external_id"] if m else "-")')
    out+="$who->$found "
  done
  echo "$out"
}
before=$(identify_all)
expected=$(for w in $(printf '%s\n' "${!probe[@]}" | sort); do printf '%s->%s ' "$w" "$w"; done)
[ "$before" = "$expected" ] || fail "identify before backup: $before"
pg "$root/scripts/backup.sh" >/dev/null
b=$(ls -d "$T"/backups/20*Z | tail -1)
t_target=$(sql "select now()")
sleep 1.1
# Enrol one more face after the target time: PITR must not bring it back.
late=$(api -d '{"external_id":"late"}' $base/$cid/subjects | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
curl -s -H "Authorization: Bearer $token" -o /dev/null -F image=@"$testdata/obama3.jpg" $base/$cid/subjects/$late/faces
flush_wal
stop_server
destroy_pg
rto_pitr=$(timed pg "$root/scripts/restore.sh" --from="$b" --mode=pitr --pgdata="$T/pg" --wal-archive="$T/wal" --target-time="$t_target" --start)
serve || fail "server does not start on the restored database"
after=$(identify_all)
[ "$after" = "$expected" ] || fail "identify after PITR: $after"
[ "$(curl -s -H "Authorization: Bearer $token" -o /dev/null -w '%{http_code}' $base/$cid/subjects/$late)" = 404 ] || fail "PITR kept a subject enrolled after the target time"
stop_server
pg dropdb facesocial && pg createdb facesocial
rto_dump=$(timed pg "$root/scripts/restore.sh" --from="$b" --mode=dump)
serve || fail "server does not start on the dump-restored database"
after=$(identify_all)
[ "$after" = "$expected" ] || fail "identify after dump restore: $after"
stop_server
printf 'RESULT galleries: identify finds the same %d people after PITR (%.2f s) and dump restore (%.2f s)\n' "${#probe[@]}" "$rto_pitr" "$rto_dump"
