#!/usr/bin/env bash
# Rolling update of the compose stack's API replicas to another image tag, one at a time, with no
# failed request: take the replica out of nginx's upstream (reload), stop it (SIGTERM: in-flight
# requests finish), start it on the new tag, wait until it is ready, put it back (reload; nginx
# resolves its new address). The tag is written to the env file, so a later `up` keeps it; a
# rollback is the same command with the previous tag.
#   scripts/deploy/compose-update.sh [--env-file .env.production] --version v1.4.0
# The upstream file is $NGINX_UPSTREAMS_DIR/live.conf (deploy/nginx/upstreams by default).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
env_file=${FACESOCIAL_ENV_FILE:-$root/.env.production} version="" services="api-1 api-2"
while [ $# -gt 0 ]; do
  case $1 in
    --env-file) env_file=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --services) services=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$version" ] || { echo "--version is required" >&2; exit 2; }
compose=("$root/scripts/deploy/compose.sh" --env-file "$env_file")
upstreams=$(set -a; . "$env_file"; echo "${NGINX_UPSTREAMS_DIR:-$root/deploy/nginx/upstreams}")
project=${COMPOSE_PROJECT_NAME:-facesocial}
engine=podman
docker info >/dev/null 2>&1 && [ "${FACESOCIAL_COMPOSE:-}" != podman ] && engine=docker
log() { printf '[update %s] %s\n' "$(date +%T)" "$*"; }
container() {  # the container of a service, by the label both compose tools set
  $engine ps -a -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"
}
upstream() {  # live.conf with the named replica marked down
  {
    echo "# Written by scripts/deploy/compose-update.sh; the default is the compose layout (two replicas)."
    echo "upstream facesocial_live {"
    for s in api-1 api-2; do
      echo "    server $s:8000 max_fails=3 fail_timeout=10s$([ "$s" = "${1:-}" ] && echo ' down');"
    done
    echo "    keepalive 32;"
    echo "    keepalive_timeout 30s;"
    echo "}"
  } > "$upstreams/live.conf.tmp"
  mv "$upstreams/live.conf.tmp" "$upstreams/live.conf"
  $engine exec "$(container nginx)" nginx -p /etc/nginx/ -c nginx.conf -s reload
}
previous=$(set -a; . "$env_file"; echo "$FACESOCIAL_VERSION")
sed -i "s|^FACESOCIAL_VERSION=.*|FACESOCIAL_VERSION=$version|" "$env_file"
for service in $services; do
  log "$service: $previous -> $version: out of the upstream"
  upstream "$service"
  sleep 2  # connections nginx already holds to it finish
  old=$(container "$service")
  $engine stop -t 30 "$old" >/dev/null
  $engine rm -v "$old" >/dev/null  # -v: an anonymous volume of the old container goes with it
  "${compose[@]}" up -d --no-deps "$service" >/dev/null 2>&1
  new=$(container "$service")
  for _ in $(seq 1 180); do
    if $engine exec "$new" curl -fsS -o /dev/null http://127.0.0.1:8000/health/ready 2>/dev/null; then break; fi
    sleep 1
  done
  $engine exec "$new" curl -fsS -o /dev/null http://127.0.0.1:8000/health/ready ||
    { log "$service is not ready on $version; it stays out of the upstream"; exit 1; }
  log "$service: ready on $version ($($engine inspect --format '{{.ImageName}}' "$new" 2>/dev/null || true)), back in"
  upstream ""
done
log "done: $services on $version (the previous tag was $previous)"
