#!/usr/bin/env bash
# FaceSocial backup: one timestamped folder with
#   db.dump        pg_dump custom format (logical; restore with scripts/restore.sh --mode=dump)
#   base.tar.gz    physical base backup (with the WAL archive: point-in-time recovery, --mode=pitr)
#   redis.rdb      Redis snapshot (when REDIS_URL is set)
#   manifest.json  the model manifest the database's embeddings were made with
#   SHA256SUMS     checksums of all of the above, checked by restore.sh
# then deletes backups older than BACKUP_RETENTION_DAYS (keeping at least BACKUP_KEEP_MIN) and the
# WAL segments no kept base backup needs.
#
# Settings (environment): PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE (or DATABASE_URL),
# BACKUP_DIR, WAL_ARCHIVE_DIR (where the server's archive_command copies WAL; optional),
# REDIS_URL, FACESOCIAL_MODEL_MANIFEST, BACKUP_RETENTION_DAYS (14), BACKUP_KEEP_MIN (2).
# The server must run with wal_level=replica, archive_mode=on and an archive_command such as
#   archive_command = 'test ! -f /archive/wal/%f && cp %p /archive/wal/%f'
set -euo pipefail
: "${BACKUP_DIR:?set BACKUP_DIR}"
retention=${BACKUP_RETENTION_DAYS:-14} keep_min=${BACKUP_KEEP_MIN:-2}
wal_dir=${WAL_ARCHIVE_DIR:-}
db=()
if [ -n "${DATABASE_URL:-}" ]; then db=(-d "$DATABASE_URL"); fi
say() { printf '[backup %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
dest="$BACKUP_DIR/$stamp"
work="$BACKUP_DIR/.incomplete-$stamp"
mkdir -p "$work"
trap '[ -n "${KEEP_DEPLOY_TMP:-}" ] || rm -rf "$work"' EXIT
t0=$(date +%s%N)

say "pg_dump (custom format)"
pg_dump "${db[@]}" --format=custom --compress=6 --no-owner --file="$work/db.dump"

say "base backup for point-in-time recovery"
# WAL comes from the archive at restore time (-X none); a checkpoint now keeps it short.
pg_basebackup "${db[@]}" --format=tar --gzip --wal-method=none --checkpoint=fast \
  --label="facesocial-$stamp" --pgdata="$work/base" --verbose 2> "$work/basebackup.log"
mv "$work/base/base.tar.gz" "$work/base.tar.gz"
mv "$work/base/backup_manifest" "$work/backup_manifest"
rmdir "$work/base"
# The first WAL segment this base backup needs, from its manifest's WAL range.
lsn=$(grep -o '"Start-LSN": *"[0-9A-F]*/[0-9A-F]*"' "$work/backup_manifest" | head -1 | grep -o '[0-9A-F]*/[0-9A-F]*')
tli=$(grep -o '"Timeline": *[0-9]*' "$work/backup_manifest" | head -1 | grep -o '[0-9]*$')
hi=$((16#${lsn%/*})) lo=$((16#${lsn#*/}))
printf '%08X%08X%08X\n' "$tli" "$hi" $((lo >> 24)) > "$work/wal_start"  # 16 MB segments

if [ -n "${REDIS_URL:-}" ]; then
  if command -v redis-cli >/dev/null; then
    say "Redis snapshot"
    redis-cli -u "$REDIS_URL" --no-auth-warning --rdb "$work/redis.rdb" >/dev/null
  else
    say "REDIS_URL is set but redis-cli is missing: no Redis snapshot" >&2
  fi
fi
if [ -n "${FACESOCIAL_MODEL_MANIFEST:-}" ] && [ -f "$FACESOCIAL_MODEL_MANIFEST" ]; then
  cp "$FACESOCIAL_MODEL_MANIFEST" "$work/manifest.json"
fi
(cd "$work" && sha256sum -- * > SHA256SUMS)
mv "$work" "$dest"
trap - EXIT
size=$(du -sh "$dest" | cut -f1)
say "backup $dest ($size) in $(awk -v ns=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f", ns / 1e9 }') s"

# Retention: by age, but never fewer than keep_min backups.
mapfile -t all < <(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '20*Z' | sort)
n=${#all[@]}
for ((i = 0; i < n - keep_min; i++)); do
  if [ -n "$(find "${all[$i]}" -maxdepth 0 -mtime +"$retention")" ]; then
    say "retention: removing ${all[$i]}"
    rm -rf "${all[$i]}"
  fi
done
# WAL older than the oldest kept base backup can no longer be replayed from anything.
oldest=$(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '20*Z' | sort | head -1)
if [ -n "$wal_dir" ] && [ -d "$wal_dir" ] && [ -f "$oldest/wal_start" ] && command -v pg_archivecleanup >/dev/null; then
  pg_archivecleanup "$wal_dir" "$(cat "$oldest/wal_start")"
fi
