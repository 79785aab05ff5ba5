#!/usr/bin/env bash
# The production compose stack with whichever compose runs here: `docker compose` where a Docker
# engine answers, else podman-compose (which reads no --env-file: the file is exported instead).
#   scripts/deploy/compose.sh [--env-file .env.production] up -d | ps | logs api-1 | down -v ...
# FACESOCIAL_COMPOSE=docker|podman picks one; the project name is COMPOSE_PROJECT_NAME (facesocial).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
env_file=${FACESOCIAL_ENV_FILE:-$root/.env.production}
if [ "${1:-}" = --env-file ]; then env_file=$2; shift 2; fi
[ -f "$env_file" ] || { echo "no $env_file: make one with scripts/deploy/make-env.sh --domain NAME" >&2; exit 2; }
file="$root/deploy/compose/docker-compose.prod.yml"
project=${COMPOSE_PROJECT_NAME:-facesocial}
tool=${FACESOCIAL_COMPOSE:-}
if [ -z "$tool" ]; then
  if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then tool=docker; else tool=podman; fi
fi
case $tool in
  docker) exec docker compose -p "$project" -f "$file" --env-file "$env_file" "$@" ;;
  podman) set -a; . "$env_file"; set +a
          # podman-compose 1.0.3's `down -v` removes the named volumes only; docker compose also
          # removes the anonymous ones of the project's containers (an image's VOLUME), so note them.
          anonymous=""
          if [ "${1:-}" = down ] && [[ " $* " =~ " -v " || " $* " =~ " --volumes " ]]; then
            for c in $(podman ps -a -q --filter "label=io.podman.compose.project=$project"); do
              for v in $(podman inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' "$c"); do
                if [ "$(podman volume inspect -f '{{.Anonymous}}' "$v" 2>/dev/null)" = true ]; then anonymous="$anonymous $v"; fi
              done
            done
          fi
          podman-compose -p "$project" -f "$file" "$@"
          # podman-compose 1.0.3's `down` leaves the project's networks; docker compose removes them.
          if [ "${1:-}" = down ]; then
            podman network ls -q --filter "label=io.podman.compose.project=$project" | xargs -r podman network rm >/dev/null
            [ -z "$anonymous" ] || podman volume rm -f $anonymous >/dev/null
          fi ;;
  *) echo "FACESOCIAL_COMPOSE must be docker or podman" >&2; exit 2 ;;
esac
