#!/usr/bin/env bash
# instance_ctl for release.py on the compose layout: start|stop|status SERVICE.
#   release.py init --nginx-cmd "docker compose -f deploy/compose/docker-compose.prod.yml exec -T nginx nginx -p /etc/nginx/ -c nginx.conf" \
#     --upstream-file deploy/nginx/upstreams/live.conf --instance-ctl scripts/deploy/compose-instance.sh \
#     --instance api-1=api-1:8000@blue --instance api-2=api-2:8000@blue --live blue
# (readiness is probed at HOST:PORT from where release.py runs: run it in a container on the
# backend network, or publish the API ports on loopback.)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dc=(docker compose -f "$root/deploy/compose/docker-compose.prod.yml" --env-file "${FACESOCIAL_ENV_FILE:-$root/.env.production}")
case ${1:?start|stop|status} in
  start) "${dc[@]}" up -d --no-deps "${2:?service}" ;;
  # compose sends SIGTERM and waits stop_grace_period (30 s) before SIGKILL.
  stop) "${dc[@]}" stop "${2:?service}" ;;
  status) "${dc[@]}" ps --status running --services | grep -qx "${2:?service}" ;;
  *) echo "usage: $0 start|stop|status SERVICE" >&2; exit 2 ;;
esac
