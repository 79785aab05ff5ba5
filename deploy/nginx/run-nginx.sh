#!/bin/sh
# nginx in the compose stack, reloaded when an upstream name moves to another address.
# Open-source nginx before 1.27.3 resolves `server api-1:8000` once, at start and at each reload. A
# replica that restarts (`restart api-1`, or the restart policy after a crash) comes back on another
# address on podman's networks, and nginx went on connecting to the old one: every request to it
# waited out proxy_connect_timeout and then went to the other replica, or got 502 while that one was
# marked down. Here the names in the upstream files are looked up every NGINX_RESOLVE_SECONDS
# (default 5) and nginx is reloaded when their addresses change; a reload that fails because a name
# does not resolve yet keeps the running configuration, and the next change retries it.
#   command: ["sh", "/etc/nginx/run-nginx.sh"]   (docker-compose.prod.yml)
set -u
interval=${NGINX_RESOLVE_SECONDS:-5}
addresses() {
  for name in $(sed -n 's/^[[:space:]]*server[[:space:]]\{1,\}\([^:;[:space:]]*\).*/\1/p' /etc/nginx/upstreams/*.conf | sort -u); do
    printf '%s=%s ' "$name" "$(getent hosts "$name" | awk '{print $1}' | sort | tr '\n' ,)"
  done
}
nginx -p /etc/nginx/ -c nginx.conf -g 'daemon off;' &
pid=$!
# Stop signals reach nginx as SIGQUIT: a graceful stop that lets requests in flight finish.
trap 'kill -QUIT "$pid" 2>/dev/null' TERM INT QUIT
trap 'kill -HUP "$pid" 2>/dev/null' HUP
last=$(addresses)
while kill -0 "$pid" 2>/dev/null; do
  sleep "$interval" &
  wait $! 2>/dev/null
  now=$(addresses)
  if [ "$now" != "$last" ]; then
    echo "run-nginx: upstream addresses changed ($last-> $now), reloading" >&2
    kill -HUP "$pid" 2>/dev/null
    last=$now
  fi
done
wait "$pid"
