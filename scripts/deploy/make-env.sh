#!/usr/bin/env bash
# Writes a production env file for deploy/compose/docker-compose.prod.yml: every secret random
# (openssl), a self-signed TLS certificate for the domain (replace it with a real one later), the
# image to run. Refuses to overwrite an existing file.
#   scripts/deploy/make-env.sh --domain api.example.com [--out .env.production]
#       [--image localhost/facesocial] [--version dev] [--tls-dir var/tls] [--backup-dir var/backups]
#       [--secrets-dir var/secrets]   (Prometheus's /metrics token, a file it reads)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
domain="" out="$root/.env.production" image=localhost/facesocial version=dev
tls_dir="$root/var/tls" backup_dir="$root/var/backups" secrets_dir="$root/var/secrets"
while [ $# -gt 0 ]; do
  case $1 in
    --domain) domain=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --tls-dir) tls_dir=$2; shift 2 ;;
    --backup-dir) backup_dir=$2; shift 2 ;;
    --secrets-dir) secrets_dir=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$domain" ] || { echo "--domain is required (the name clients use, in the certificate)" >&2; exit 2; }
[ -e "$out" ] && { echo "$out exists; remove it first or pass --out" >&2; exit 1; }
# URL-safe secrets: they go into postgres:// and redis:// URLs unescaped.
secret() { openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n'; }
mkdir -p "$tls_dir" "$backup_dir"
tls_dir=$(cd "$tls_dir" && pwd)
backup_dir=$(cd "$backup_dir" && pwd)
if [ ! -s "$tls_dir/server.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -sha256 -days 365 -nodes -subj "/CN=$domain" \
    -addext "subjectAltName=DNS:$domain" -keyout "$tls_dir/server.key" -out "$tls_dir/server.crt" 2>/dev/null
  chmod 0644 "$tls_dir/server.crt" "$tls_dir/server.key"  # read by nginx inside its container
fi
# The metrics token twice: in the env file for the API, and as a file for Prometheus (its
# configuration cannot read the environment). Readable by the Prometheus container's user.
metrics_token=$(secret)
redis_password=$(secret)
mkdir -p "$secrets_dir"
secrets_dir=$(cd "$secrets_dir" && pwd)
chmod 0711 "$secrets_dir"
printf '%s' "$metrics_token" > "$secrets_dir/metrics-token"
chmod 0644 "$secrets_dir/metrics-token"
umask 077
cat > "$out" <<ENV
# Made by scripts/deploy/make-env.sh on $(date -u +%FT%TZ); never commit it.
FACESOCIAL_IMAGE=$image
FACESOCIAL_VERSION=$version
API_DOMAIN=$domain
API_CPUS=2
API_MEMORY=4g
FACESOCIAL_LOG_LEVEL=info
FACESOCIAL_PRELOAD_MODELS=sface
FACESOCIAL_TRUSTED_PROXIES=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16
FACESOCIAL_ADMIN_EMAIL=admin@$domain
FACESOCIAL_ADMIN_PASSWORD=$(secret)
JWT_SECRET_KEY=$(secret)
FACESOCIAL_DATA_KEY=$(openssl rand -base64 32)
METRICS_TOKEN=$metrics_token
METRICS_TOKEN_FILE=$secrets_dir/metrics-token
POSTGRES_USER=facesocial
POSTGRES_PASSWORD=$(secret)
POSTGRES_DB=facesocial
REPLICATION_PASSWORD=$(secret)
REDIS_PASSWORD=$redis_password
# A Redis Cluster instead (compose profile redis-cluster): REDIS_URL= and
# REDIS_CLUSTER_NODES=redis://:$redis_password@redis-node-1:6379,redis-node-2:6379,redis-node-3:6379
REDIS_URL=redis://:$redis_password@redis:6379/0
REDIS_CLUSTER_NODES=
TLS_CERT_DIR=$tls_dir
PROMETHEUS_RETENTION=15d
GRAFANA_ADMIN_USER=admin
GRAFANA_ADMIN_PASSWORD=$(secret)
BACKUP_HOST_DIR=$backup_dir
BACKUP_RETENTION_DAYS=14
BACKUP_INTERVAL_SECONDS=86400
ENV
echo "wrote $out (secrets random, mode 0600) and a self-signed certificate for $domain in $tls_dir"
