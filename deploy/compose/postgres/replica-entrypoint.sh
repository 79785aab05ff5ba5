#!/bin/bash
# Streaming replica: clone the primary once (pg_basebackup -R writes standby.signal and the
# connection settings), then run as a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres-primary -U replicator; do sleep 1; done
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  gosu postgres pg_basebackup -h postgres-primary -U replicator -D "$PGDATA" -R -X stream -P
fi
exec gosu postgres postgres -c hot_standby=on
