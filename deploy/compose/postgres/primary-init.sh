#!/bin/bash
# Runs once on an empty primary: a replication role, a hba line for it, the WAL archive folder.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL
echo "host replication replicator samenet scram-sha-256" >> "$PGDATA/pg_hba.conf"
mkdir -p /archive/wal
chown postgres:postgres /archive/wal 2>/dev/null || true
