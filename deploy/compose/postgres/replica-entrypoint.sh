#!/bin/bash
# Streaming replica: clone the primary once (pg_basebackup -R writes standby.signal and the
# connection settings; a fast checkpoint, not a spread one that can take minutes), then run as a
# hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres-primary -U replicator; do sleep 1; done
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  gosu postgres pg_basebackup -h postgres-primary -U replicator -D "$PGDATA" -R -X stream -P --checkpoint=fast
fi
exec gosu postgres postgres -c hot_standby=on
