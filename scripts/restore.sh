#!/usr/bin/env bash
# FaceSocial restore from a scripts/backup.sh folder (checksums are checked first).
#   restore.sh --from=DIR --mode=dump
#       pg_restore into PGDATABASE (or DATABASE_URL), replacing what is there
#   restore.sh --from=DIR --mode=pitr --pgdata=DIR --wal-archive=DIR [--target-time=TIME] [--start]
#       unpack the base backup into an empty PGDATA, replay archived WAL up to TIME
#       (e.g. '2026-01-31 12:00:00+00'; default: everything archived), then promote;
#       --start runs pg_ctl start and waits for recovery to finish (PGPORT, PGHOST as socket dir)
#   restore.sh --from=DIR --mode=redis --redis-rdb=PATH
#   --redis-rdb=PATH    (any mode) copy the Redis snapshot to PATH: stop Redis first, start it after
set -euo pipefail
from="" mode="" pgdata="" wal="" target="" start=0 redis_to=""
for arg in "$@"; do
  case $arg in
    --from=*) from=${arg#*=} ;;
    --mode=*) mode=${arg#*=} ;;
    --pgdata=*) pgdata=${arg#*=} ;;
    --wal-archive=*) wal=${arg#*=} ;;
    --target-time=*) target=${arg#*=} ;;
    --start) start=1 ;;
    --redis-rdb=*) redis_to=${arg#*=} ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
say() { printf '[restore %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
[ -d "$from" ] || { echo "--from=DIR (a backup folder) is required" >&2; exit 2; }
(cd "$from" && sha256sum --quiet -c SHA256SUMS) || { echo "checksum mismatch in $from" >&2; exit 1; }
db=(-d "${DATABASE_URL:-${PGDATABASE:-postgres}}")

case $mode in
  dump)
    say "pg_restore $from/db.dump"
    pg_restore "${db[@]}" --clean --if-exists --no-owner --exit-on-error --single-transaction "$from/db.dump"
    ;;
  pitr)
    [ -n "$pgdata" ] && [ -n "$wal" ] || { echo "--pgdata and --wal-archive are required" >&2; exit 2; }
    if [ -d "$pgdata" ] && [ -n "$(ls -A "$pgdata")" ]; then
      echo "$pgdata is not empty; stop PostgreSQL and move it aside first" >&2; exit 1
    fi
    mkdir -p "$pgdata" && chmod 700 "$pgdata"
    say "unpacking base backup into $pgdata"
    tar -xzf "$from/base.tar.gz" -C "$pgdata"
    {
      echo "restore_command = 'cp \"$wal/%f\" \"%p\"'"
      [ -n "$target" ] && echo "recovery_target_time = '$target'"
      echo "recovery_target_action = 'promote'"
    } >> "$pgdata/postgresql.auto.conf"
    touch "$pgdata/recovery.signal"
    if [ $start = 1 ]; then
      say "starting PostgreSQL and replaying WAL${target:+ up to $target}"
      pg_ctl -D "$pgdata" -l "$pgdata/restore.log" -w -t 300 start >/dev/null
      for _ in $(seq 600); do
        [ "$(psql -XAtc 'select pg_is_in_recovery()' postgres 2>/dev/null)" = f ] && break
        sleep 0.2
      done
      [ "$(psql -XAtc 'select pg_is_in_recovery()' postgres)" = f ] || { echo "recovery did not finish" >&2; exit 1; }
      say "recovered and promoted"
    fi
    ;;
  redis) [ -n "$redis_to" ] || { echo "--mode=redis needs --redis-rdb=PATH" >&2; exit 2; } ;;
  *) echo "--mode=dump, --mode=pitr or --mode=redis" >&2; exit 2 ;;
esac
if [ -n "$redis_to" ] && [ -f "$from/redis.rdb" ]; then
  cp "$from/redis.rdb" "$redis_to"
  say "Redis snapshot copied to $redis_to"
fi
