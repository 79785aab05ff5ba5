#!/usr/bin/env bash
# Pre-deployment checks that can be made from the host (docs/deployment.md lists the rest).
#   scripts/preflight.sh [--quick] [--env-file=FILE] [--nginx-conf=FILE] [--tls-cert=FILE]
# Reads the server's environment (FACESOCIAL_*, DATABASE_URL, ...) like the server does, plus
# FACESOCIAL_BIN (default .build/release/facesocial), BACKUP_DIR, PREFLIGHT_MIN_MEM_MB (2048).
# --quick skips the database and backup-age checks (used by the promote scripts).
# Exit 1 when any check FAILs; WARNs do not block.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0 env_file="" nginx_conf="" tls_cert=""
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --env-file=*) env_file=${arg#*=} ;;
    --nginx-conf=*) nginx_conf=${arg#*=} ;;
    --tls-cert=*) tls_cert=${arg#*=} ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
if [ -n "$env_file" ]; then set -a; . "$env_file"; set +a; fi
fails=0 warns=0
pass() { printf '  PASS  %s\n' "$*"; }
warn() { printf '  WARN  %s\n' "$*"; warns=$((warns + 1)); }
fail() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }
bin=${FACESOCIAL_BIN:-$root/.build/release/facesocial}
echo "preflight ($(hostname), $(date -u +%FT%TZ))"

# Secrets: production refuses development defaults; catch placeholders before it does.
if [ "${FACESOCIAL_PROFILE:-development}" = production ]; then
  if [ ${#JWT_SECRET_KEY} -ge 32 ] 2>/dev/null && [[ ${JWT_SECRET_KEY:-} != *CHANGE_ME* ]]; then pass "JWT_SECRET_KEY set (${#JWT_SECRET_KEY} characters)"
  else fail "JWT_SECRET_KEY must be your own, at least 32 characters"; fi
  if [ "$(printf '%s' "${FACESOCIAL_DATA_KEY:-}" | base64 -d 2>/dev/null | wc -c)" = 32 ]; then pass "FACESOCIAL_DATA_KEY is base64 of 32 bytes"
  else fail "FACESOCIAL_DATA_KEY must be base64 of 32 bytes"; fi
else
  warn "FACESOCIAL_PROFILE is ${FACESOCIAL_PROFILE:-development}, not production"
fi
if [ -n "$env_file" ]; then
  if grep -q 'CHANGE_ME' "$env_file"; then fail "$env_file still has CHANGE_ME placeholders: $(grep -o '^[A-Z_]*=CHANGE_ME' "$env_file" | cut -d= -f1 | tr '\n' ' ')"
  else pass "$env_file has no placeholders"; fi
fi

# Models: installed and matching the manifest's SHA-256.
if [ -x "$bin" ]; then
  if out=$("$bin" models verify 2>&1); then pass "models verified against ${FACESOCIAL_MODEL_MANIFEST:-models/manifest.json}"
  else fail "models verify: $(tail -3 <<<"$out" | tr '\n' ' ')"; fi
else
  fail "no server binary at $bin"
fi

# Resources.
avail_mb=$(awk '/MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)
if [ "$avail_mb" -ge "${PREFLIGHT_MIN_MEM_MB:-2048}" ]; then pass "memory available ${avail_mb} MB"
else fail "memory available ${avail_mb} MB < ${PREFLIGHT_MIN_MEM_MB:-2048} MB"; fi
for d in "${FACESOCIAL_DATA_DIR:-$root/var/data}" "${BACKUP_DIR:-}"; do
  [ -n "$d" ] || continue
  probe=$d; while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
  used=$(df -P "$probe" | awk 'NR == 2 { gsub("%", "", $5); print $5 }')
  if [ "$used" -lt 80 ]; then pass "disk $probe ${used}% used"; else fail "disk $probe ${used}% used (alert threshold 80%)"; fi
done

# Edge.
if [ -n "$tls_cert" ]; then
  if openssl x509 -in "$tls_cert" -noout -checkend $((14 * 86400)) >/dev/null 2>&1; then pass "TLS certificate valid for 14 more days"
  else fail "TLS certificate $tls_cert expires within 14 days (or is unreadable)"; fi
fi
if [ -n "$nginx_conf" ]; then
  if out=$(nginx -t -q -c "$nginx_conf" 2>&1); then pass "nginx -t $nginx_conf"; else fail "nginx -t: $out"; fi
fi

if [ $quick = 0 ]; then
  case ${DATABASE_URL:-} in
    postgres://*|postgresql://*)
      if pg_isready -d "$DATABASE_URL" -t 5 >/dev/null 2>&1; then pass "PostgreSQL primary reachable"
      else fail "PostgreSQL primary not reachable"; fi ;;
    *) pass "database: embedded SQLite (${DATABASE_URL:-default})" ;;
  esac
  if [ -n "${BACKUP_DIR:-}" ]; then
    last=$(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '20*Z' -mmin -1560 2>/dev/null | sort | tail -1)
    if [ -n "$last" ]; then pass "recent backup $(basename "$last")"; else warn "no backup in $BACKUP_DIR from the last 26 hours"; fi
  fi
fi
echo "preflight: $fails failed, $warns warnings"
[ $fails = 0 ]
