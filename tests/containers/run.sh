#!/usr/bin/env bash
# Container tests with podman (docs/deployment.md, "Tests"): the images built from the repository's
# Dockerfiles, the CPU image run as production runs it, the docker CLI against podman's socket, and
# the production compose stack behind nginx TLS with a rolling update and a rollback.
#   tests/containers/run.sh all       # make test-containers: every phase below, in order
#   tests/containers/run.sh quick     # make test: binary-image run docker compose
#   tests/containers/run.sh image     # base images, the CPU image (cold or cached, then cached)
#   tests/containers/run.sh binary-image  # the CPU image's runtime stage around FACESOCIAL_BIN
#                                     # (default .build/debug/facesocial): no Swift build in the image
#   tests/containers/run.sh gpu-image # Dockerfile.gpu on the local base (built, not run: no GPU)
#   tests/containers/run.sh run       # the CPU image: hardening, health, detect, ready, SIGTERM, secrets
#   tests/containers/run.sh docker    # the same image through the docker CLI on podman's API socket
#   tests/containers/run.sh compose   # compose stack: HTTPS checks, restart, Prometheus, rolling update
# FACESOCIAL_TEST_IMAGE names an image already built (skips the build in the later phases).
# Everything a phase starts carries the label org.facesocial.test=<run> and is removed on exit,
# also after a failure; a summary of what ran, sizes and timings is printed last.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source scripts/containers/env.sh
export FACESOCIAL_TESTDATA=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
phases=${1:-all}
[ "$phases" = all ] && phases="image gpu-image run docker compose compose-cluster"
[ "$phases" = quick ] && phases="binary-image run docker compose compose-cluster"
[ "${FACESOCIAL_CONTAINERS_GPU:-1}" = 0 ] && phases=${phases/gpu-image/}
run=fsct$$
label="org.facesocial.test=$run"
work=$(mktemp -d /tmp/facesocial-containers.XXXXXX)
summary="$work/summary.txt"
# Volumes that exist before the run: any other one left at the end was made by it (anonymous
# volumes of an image's VOLUME carry no compose label, so a label filter alone misses them).
podman volume ls -q | sort > "$work/volumes-before.txt"
new_volumes() {  # made since the start, less the run's own labelled ones (removed on exit)
  { cat "$work/volumes-before.txt"; podman volume ls -q --filter "label=$label"; } | sort -u > "$work/volumes-known.txt"
  podman volume ls -q | sort | comm -13 "$work/volumes-known.txt" - | wc -l
}
tag=${FACESOCIAL_TEST_TAG:-test}  # kept between runs: the layer cache of the next build
image=${FACESOCIAL_TEST_IMAGE:-}
pg_dir="" redis_pid="" service_pid="" compose_env="" next_image=""
say() { printf '\033[1;36m[containers %s]\033[0m %s\n' "$(date +%T)" "$*"; }
record() { printf '%-52s %s\n' "$1" "$2" >> "$summary"; say "$1: $2"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() {  # URL SECONDS: until the URL answers 200
  local end=$(( $(date +%s) + $2 ))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 1
  done
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$compose_env" ]; then
    COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-$run} scripts/deploy/compose.sh --env-file "$compose_env" down -v -t 5 >/dev/null 2>&1
  fi
  podman ps -a -q --filter "label=$label" | xargs -r podman rm -f -v -t 0 >/dev/null 2>&1
  podman volume ls -q --filter "label=$label" | xargs -r podman volume rm -f >/dev/null 2>&1
  # The compose phase's project and the cluster phase's (${run}c).
  for project in "$run" "${run}c"; do
    podman ps -a -q --filter "label=com.docker.compose.project=$project" | xargs -r podman rm -f -v -t 0 >/dev/null 2>&1
    podman volume ls -q --filter "label=io.podman.compose.project=$project" | xargs -r podman volume rm -f >/dev/null 2>&1
    podman network ls -q --filter "label=io.podman.compose.project=$project" | xargs -r podman network rm -f >/dev/null 2>&1
    podman pod rm -f "pod_$project" >/dev/null 2>&1
  done
  [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  [ -n "$pg_dir" ] && scripts/test-services/postgres.sh stop "$pg_dir" >/dev/null 2>&1
  [ -n "$next_image" ] && podman rmi -f "$next_image" >/dev/null 2>&1
  echo
  echo "==== container tests: $( [ $rc = 0 ] && echo PASSED || echo "FAILED (exit $rc)")"
  [ -f "$summary" ] && cat "$summary"
  [ $rc = 0 ] && rm -rf "$work" || echo "logs kept in $work"
  exit $rc
}
trap cleanup EXIT

# Loopback PostgreSQL (primary + replica) and Redis for the single-container phases.
start_backing_services() {
  [ -n "$pg_dir" ] && return 0
  eval "$(scripts/test-services/postgres.sh start)"
  pg_dir=$FACESOCIAL_TEST_POSTGRES_DIR
  redis_port=$(free_port)
  redis_password=$(openssl rand -hex 16)
  redis-server --bind 127.0.0.1 --port "$redis_port" --requirepass "$redis_password" --save '' \
    --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
  redis_pid=$!
  jwt_secret=$(openssl rand -hex 32)
  data_key=$(openssl rand -base64 32)
  export FS_ADMIN_EMAIL=admin@containers.test FS_ADMIN_PASSWORD=$(openssl rand -hex 16)
}

# The production environment of one API container on the host network.
api_env() {
  echo -e "FACESOCIAL_PORT=$1\nJWT_SECRET_KEY=$jwt_secret\nFACESOCIAL_DATA_KEY=$data_key"
  echo -e "DATABASE_URL=$FACESOCIAL_TEST_POSTGRES_URL\nDATABASE_REPLICA_URLS=$FACESOCIAL_TEST_POSTGRES_REPLICA_URL"
  echo -e "REDIS_URL=redis://:$redis_password@127.0.0.1:$redis_port/0"
  echo -e "FACESOCIAL_ADMIN_EMAIL=$FS_ADMIN_EMAIL\nFACESOCIAL_ADMIN_PASSWORD=$FS_ADMIN_PASSWORD"
}
hardening=(--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges)

phase_image() {
  local out first second
  local start=$(date +%s)
  scripts/containers/base-images.sh > "$work/base.txt"
  record "base images (debootstrap, local Swift builder)" "$(tr '\n' ' ' < "$work/base.txt")in $(( $(date +%s) - start )) s"
  start=$(date +%s)
  scripts/containers/base-images.sh > /dev/null
  record "base images again, nothing changed" "$(( $(date +%s) - start )) s"
  out=$(scripts/containers/build-image.sh cpu "$tag" 2> "$work/build-cpu.log" | tail -1) ||
    { tail -40 "$work/build-cpu.log"; return 1; }
  first=$out
  # The same build again: every layer from the cache.
  out=$(scripts/containers/build-image.sh cpu "$tag" 2> "$work/build-cpu-cached.log" | tail -1)
  second=${out##*seconds=}
  image=localhost/facesocial:$tag
  local mb=${first#*size_mb=}; mb=${mb%% *}
  record "CPU image (deploy/docker/Dockerfile)" "$first (${second} s with the layer cache)"
  check_no_unaccepted_models
  # The aim is 350 MB (docs/deployment.md says where it stands); this catches a regression. 430, not
  # 400 since HEIC input: Debian's libheif1 links its codecs (x265, aom, dav1d, de265: about 25 MB
  # installed), which took the image from 380 to 406 MB.
  [ "$mb" -le "${FACESOCIAL_IMAGE_MAX_MB:-430}" ] || { record "CPU image size" "FAIL: $mb MB > ${FACESOCIAL_IMAGE_MAX_MB:-430} MB"; return 1; }
}

phase_gpu_image() {
  local out
  out=$(scripts/containers/build-image.sh gpu "$tag" 2> "$work/build-gpu.log" | tail -1) ||
    { tail -40 "$work/build-gpu.log"; return 1; }
  local gpu_image=localhost/facesocial:$tag-gpu
  # No GPU here: check what can be checked without one, then drop the image.
  podman run --rm --network none --label "$label" --entrypoint /bin/sh "$gpu_image" -c \
    'ldd /opt/facesocial/bin/facesocial | grep -c "not found"; ls /opt/facesocial/nvidia-lib | wc -l' > "$work/gpu-check.txt" || true
  local missing libs
  missing=$(sed -n 1p "$work/gpu-check.txt"); libs=$(sed -n 2p "$work/gpu-check.txt")
  [ "$missing" = 0 ] || { record "GPU image" "FAIL: unresolved libraries"; return 1; }
  podman run --rm --network none --label "$label" "$gpu_image" models verify > "$work/gpu-verify.txt" 2>&1 ||
    { cat "$work/gpu-verify.txt"; return 1; }
  record "GPU image (Dockerfile.gpu on the local base)" "$out; binary links, $libs NVIDIA libraries, models verify (not run: no GPU)"
  podman rmi -f "$gpu_image" > /dev/null
}

phase_binary_image() {
  local bin=${FACESOCIAL_BIN:-$root/.build/debug/facesocial} out
  [ -x "$bin" ] || { record "binary image" "FAIL: no binary at $bin"; return 1; }
  # Its own tag: the full build's image (phase image) stays as it was.
  out=$(FACESOCIAL_PREBUILT_BIN=$bin scripts/containers/build-image.sh cpu "$tag-binary" 2> "$work/build-binary.log" | tail -1) ||
    { tail -40 "$work/build-binary.log"; return 1; }
  image=localhost/facesocial:$tag-binary
  record "CPU image's runtime stage around $(basename "$(dirname "$bin")") binary" "$out"
  check_no_unaccepted_models
}

# The image build stages models into var/models; one whose licence needs an opt-in must not
# appear there without it (it did once: the staging copied every manifest entry).
check_no_unaccepted_models() {
  local found
  found=$(python3 - models/manifest.json var/models "${FACESOCIAL_ACCEPT_MODEL_LICENCES:-}" <<'PY'
import json, os, sys
manifest, dest, accepted = sys.argv[1:]
accepted = {word.strip() for word in accepted.split(",") if word.strip()}
for entry in json.load(open(manifest))["models"]:
    if entry.get("licence_opt_in") and entry["licence_opt_in"] not in accepted and os.path.exists(os.path.join(dest, entry["file"])):
        print(entry["id"])
PY
)
  [ -z "$found" ] || { record "var/models after the image build" "FAIL: installed without the opt-in: $found"; return 1; }
  record "var/models after the image build" "no model installed without its licence opt-in"
}

ensure_image() {
  [ -n "$image" ] && return 0
  phase_image
}

phase_run() {
  ensure_image
  start_backing_services
  local port name pid
  port=$(free_port)
  name=$run-api
  podman volume create --label "$label" "$run-data" > /dev/null
  podman run -d --name "$name" --label "$label" --network host "${hardening[@]}" \
    -v "$run-data:/var/lib/facesocial" --env-file <(api_env "$port") "$image" > /dev/null
  wait_http "http://127.0.0.1:$port/health/ready" 180 ||
    { podman logs --tail 40 "$name"; record "run: /health/ready" "FAIL: not ready in 180 s"; return 1; }
  # As production runs it: uid 10001, read-only root, no capabilities, no new privileges.
  local status
  status=$(podman exec "$name" sh -c 'id -u; grep -E "^(CapEff|NoNewPrivs)" /proc/1/status | tr -s "\t" " "; touch /probe 2>&1 || true')
  echo "$status" > "$work/run-status.txt"
  grep -qx 10001 <<< "$status" && grep -q "CapEff: 0000000000000000" <<< "$status" &&
    grep -q "NoNewPrivs: 1" <<< "$status" && grep -q "Read-only file system" <<< "$status" ||
    { cat "$work/run-status.txt"; record "run: hardening" "FAIL"; return 1; }
  record "run: uid 10001, read-only root, CapEff 0, no_new_privs" "ok"
  podman healthcheck run "$name" > /dev/null || { record "run: HEALTHCHECK" "FAIL"; return 1; }
  record "run: image HEALTHCHECK (curl /health)" "healthy"
  # The web console ships beside the binary (its resource bundle) and is served from the image.
  curl -fsS -D "$work/console-headers.txt" -o "$work/console.html" "http://127.0.0.1:$port/console" &&
    grep -q 'src="/console/app.js"' "$work/console.html" &&
    grep -qi "^content-security-policy: .*frame-ancestors 'none'" "$work/console-headers.txt" &&
    curl -fsS -o /dev/null "http://127.0.0.1:$port/console/app.js" ||
    { record "run: /console" "FAIL: the console is not served (resource bundle missing?)"; return 1; }
  record "run: /console and its modules served, with the CSP" "ok"
  record "run: /health/ready against PostgreSQL + Redis" "$(curl -sS "http://127.0.0.1:$port/health/ready" |
    python3 -c 'import json, sys; d = json.load(sys.stdin)["data"]; print(d["status"], {k: v for k, v in d.items() if k != "status"})' | cut -c1-150)"
  python3 tests/containers/client.py "http://127.0.0.1:$port" check > "$work/run-check.txt" ||
    { cat "$work/run-check.txt"; record "run: API checks" "FAIL"; return 1; }
  record "run: detect group6_t1.jpg, enrol, identify" "$(grep -c '^  ok' "$work/run-check.txt") checks ok ($(grep -o '[0-9]* faces' "$work/run-check.txt"))"
  # SIGTERM to PID 1 (tini) reaches the server: in-flight requests finish, new ones are refused.
  pid=$(podman inspect --format '{{.State.Pid}}' "$name")
  # Within compose's stop_grace_period (30 s), on a machine that may be busy.
  GRACEFUL_MAX_EXIT=25 GRACEFUL_TOKEN=$(python3 tests/containers/client.py "http://127.0.0.1:$port" token) \
    python3 tests/deploy/graceful.py "$port" "$pid" "$FACESOCIAL_TESTDATA/group6_t1.jpg" > "$work/graceful.txt" ||
    { cat "$work/graceful.txt"; record "run: SIGTERM" "FAIL"; return 1; }
  podman wait "$name" > "$work/exit.txt" 2>/dev/null || true
  record "run: SIGTERM drains" "$(sed 's/graceful shutdown: //' "$work/graceful.txt"), exit $(cat "$work/exit.txt")"
  # Production with the development secret: a clear message and a non-zero exit, before serving.
  local rc=0
  podman run --rm --label "$label" --network none "${hardening[@]}" -e FACESOCIAL_DATA_KEY="$data_key" \
    "$image" > "$work/refuse.txt" 2>&1 || rc=$?
  [ $rc -ne 0 ] && grep -q JWT_SECRET_KEY "$work/refuse.txt" ||
    { cat "$work/refuse.txt"; record "run: default secret refused" "FAIL (exit $rc)"; return 1; }
  record "run: default JWT secret in production" "refused, exit $rc: $(grep -m1 JWT_SECRET_KEY "$work/refuse.txt" | cut -c1-110)"
}

phase_docker() {
  ensure_image
  start_backing_services
  command -v docker > /dev/null || { record "docker CLI" "FAIL: no docker client"; return 1; }
  local sock="$work/podman.sock" port name
  podman system service --time=0 "unix://$sock" > "$work/podman-service.log" 2>&1 &
  service_pid=$!
  for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.2; done
  export DOCKER_HOST="unix://$sock" DOCKER_BUILDKIT=0
  port=$(free_port)
  name=$run-docker
  docker run -d --name "$name" --label "$label" --network host "${hardening[@]}" \
    --env-file <(api_env "$port") "$image" > /dev/null
  wait_http "http://127.0.0.1:$port/health/ready" 180 || { docker logs --tail 40 "$name"; return 1; }
  python3 tests/containers/client.py "http://127.0.0.1:$port" check > "$work/docker-check.txt" ||
    { cat "$work/docker-check.txt"; return 1; }
  docker stop -t 30 "$name" > /dev/null
  local code
  code=$(docker inspect --format '{{.State.ExitCode}}' "$name")
  docker rm -v "$name" > /dev/null
  [ "$code" = 0 ] || { record "docker: stop" "FAIL: exit $code"; return 1; }
  record "docker CLI $(docker version --format '{{.Client.Version}}') on podman $(docker version --format '{{.Server.Version}}')" \
    "run, ready, $(grep -c '^  ok' "$work/docker-check.txt") API checks, stop (exit 0), rm"
  unset DOCKER_HOST DOCKER_BUILDKIT
  kill "$service_pid"; service_pid=""
}

# A third-party image: the official one where it is present or can be pulled, else the stand-in.
third_party() {  # VARIABLE OFFICIAL STAND-IN-TARGET
  if podman image exists "$2" || podman pull -q "$2" > /dev/null 2>&1; then echo "$1=$2"; return; fi
  local standin=localhost/facesocial-standin-$3:bookworm
  podman build -q --network host --build-arg "BASE_IMAGE=$RUNTIME_IMAGE" --target "$3" -t "$standin" \
    tests/containers/standins > /dev/null
  echo "$1=$standin"
  echo "$1 stand-in" >> "$work/standins.txt"
}

phase_compose() {
  ensure_image
  eval "$(scripts/containers/base-images.sh)"
  compose_env="$work/.env.production"
  local domain=api.facesocial.test https_port
  scripts/deploy/make-env.sh --domain "$domain" --out "$compose_env" --image "${image%:*}" \
    --version "${image##*:}" --tls-dir "$work/tls" --backup-dir "$work/backups" --secrets-dir "$work/secrets" > /dev/null
  mkdir -p "$work/upstreams" && cp deploy/nginx/upstreams/live.conf "$work/upstreams/"
  https_port=$(free_port)
  {
    echo "HTTP_PORT=$(free_port)"; echo "HTTPS_PORT=$https_port"; echo "PROMETHEUS_PORT=$(free_port)"
    echo "GRAFANA_PORT=$(free_port)"; echo "NGINX_UPSTREAMS_DIR=$work/upstreams"
    echo "API_CPUS=1"; echo "API_MEMORY=3g"
    third_party NGINX_IMAGE docker.io/library/nginx:1.27-bookworm nginx
    third_party POSTGRES_IMAGE docker.io/library/postgres:16-bookworm postgres
    third_party REDIS_IMAGE docker.io/library/redis:7-bookworm redis
    third_party PROMETHEUS_IMAGE docker.io/prom/prometheus:v2.53.0 prometheus
    third_party NODE_EXPORTER_IMAGE docker.io/prom/node-exporter:v1.8.1 node-exporter
  } >> "$compose_env"
  local services="nginx postgres-replica prometheus node-exporter"
  # Grafana has no Debian package to stand in for it: it runs where its image can be had.
  if podman image exists docker.io/grafana/grafana:11.1.0 || podman pull -q docker.io/grafana/grafana:11.1.0 > /dev/null 2>&1; then
    services="$services grafana"
  fi
  set -a; . "$compose_env"; set +a
  export COMPOSE_PROJECT_NAME=$run
  local start=$(date +%s)
  scripts/deploy/compose.sh --env-file "$compose_env" up -d $services > "$work/compose-up.log" 2>&1 ||
    { tail -30 "$work/compose-up.log"; return 1; }
  export FS_DOMAIN=$domain FS_CACERT="$work/tls/server.crt"
  export FS_ADMIN_EMAIL=$FACESOCIAL_ADMIN_EMAIL FS_ADMIN_PASSWORD=$FACESOCIAL_ADMIN_PASSWORD
  local base="https://127.0.0.1:$https_port" end=$(( $(date +%s) + 240 ))
  until python3 tests/containers/client.py "$base" token > /dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { podman ps -a --filter "label=com.docker.compose.project=$run"; \
      for c in $(podman ps -a -q --filter "label=com.docker.compose.project=$run"); do podman logs --tail 8 "$c"; done; return 1; }
    sleep 2
  done
  record "compose: up ($services) until signed in over HTTPS" "$(( $(date +%s) - start )) s; $(cat "$work/standins.txt" 2>/dev/null | tr '\n' ',' )"
  python3 tests/containers/client.py "$base" check > "$work/compose-check.txt" ||
    { cat "$work/compose-check.txt"; return 1; }
  local coll
  coll=$(sed -n 's/^COLLECTION=//p' "$work/compose-check.txt")
  record "compose: HTTPS /health, /system/vram, /system/models, detect, enrol, identify" "$(grep -c '^  ok' "$work/compose-check.txt") checks ok"
  # The replica streams from the primary.
  local lag
  lag=$(podman exec "${run}_postgres-replica_1" psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Atc 'select pg_is_in_recovery()')
  [ "$lag" = t ] || { record "compose: streaming replica" "FAIL ($lag)"; return 1; }
  record "compose: postgres-replica in recovery (streaming)" "ok"
  # A restart without draining (the rolling update below drains first): the stack must come back
  # with the gallery intact, and nginx must reach api-1 again. podman gives the restarted container
  # another address; nginx alone would go on connecting to the old one (deploy/nginx/run-nginx.sh).
  local ip_of='{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' old_ip new_ip logged restarted
  old_ip=$(podman inspect -f "$ip_of" "${run}_api-1_1")
  logged=$(podman exec "${run}_nginx_1" wc -l < /dev/null /etc/nginx/logs/access.log | awk '{print $1}')
  scripts/deploy/compose.sh --env-file "$compose_env" restart api-1 > /dev/null 2>&1
  restarted=$(date +%s)
  end=$(( restarted + 120 ))
  until podman exec "${run}_api-1_1" curl -fsS -o /dev/null http://127.0.0.1:8000/health/ready 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || { record "compose: api-1 ready after restart" "FAIL: not in 120 s"; return 1; }
    sleep 1
  done
  new_ip=$(podman inspect -f "$ip_of" "${run}_api-1_1")
  # Proxied requests until one is logged as answered by api-1 at its new address (on one try; the
  # production profile answers /openapi.json with 404, an answer all the same).
  end=$(( $(date +%s) + 60 ))
  until podman exec "${run}_nginx_1" sh -c "tail -n +$(( logged + 1 )) /etc/nginx/logs/access.log | grep -q 'ua=\"$new_ip:8000\" us=\"[2-4][0-9][0-9]\"'" 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || { record "compose: nginx reaches api-1 after restart" "FAIL: none of its answers in 60 s (at $new_ip, was $old_ip)"; return 1; }
    for _ in 1 2; do
      curl -s -o /dev/null --cacert "$work/tls/server.crt" --resolve "$domain:$https_port:127.0.0.1" "https://$domain:$https_port/openapi.json" || true
    done
    sleep 1
  done
  record "compose: restart api-1" "back at $new_ip (was $old_ip), answering through nginx $(( $(date +%s) - restarted )) s after the restart"
  python3 tests/containers/client.py "$base" identify "$coll" > "$work/identify-after-restart.txt" ||
    { cat "$work/identify-after-restart.txt"; return 1; }
  record "compose: identify after restart api-1" "$(tail -1 "$work/identify-after-restart.txt" | sed 's/^ *ok *//')"
  # Prometheus: both replicas scraped, the alert rules loaded and evaluated.
  local prom="http://127.0.0.1:$PROMETHEUS_PORT" up="" rules=""
  end=$(( $(date +%s) + 120 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    up=$(curl -fsS --max-time 5 "$prom/api/v1/query" --data-urlencode 'query=sum(up{job="facesocial"})' |
      python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null || echo 0)
    [ "$up" = 2 ] && break
    sleep 3
  done
  [ "$up" = 2 ] || { record "compose: Prometheus up{job=facesocial}" "FAIL: $up of 2"; return 1; }
  rules=$(curl -fsS --max-time 5 "$prom/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") != "ok"]
print(f"{len(rules)} rules in {len(groups)} groups, {len(bad)} unhealthy {bad}")')
  grep -q " 0 unhealthy" <<< "$rules" || { record "compose: alert rules" "FAIL: $rules"; return 1; }
  # It scrapes with the metrics token: without one /metrics is refused in production.
  local anonymous
  anonymous=$(podman exec "${run}_api-1_1" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/metrics || true)
  [ "$anonymous" = 401 ] || { record "compose: /metrics without the token" "FAIL: $anonymous, not 401"; return 1; }
  record "compose: Prometheus scrapes api-1 and api-2 (up == 1 each) with the metrics token; anonymous /metrics 401" "ok; $rules"
  # Rolling update to a new tag under steady load, then the rollback, with no failed request.
  local next=${image##*:}-next
  next_image="${image%:*}:$next"
  podman tag "$image" "$next_image"
  python3 tests/containers/client.py "$base" load 600 "$work/load.stop" > "$work/load.json" 2>&1 &
  local load_pid=$! t0=$(date +%s)
  sleep 5
  scripts/deploy/compose-update.sh --env-file "$compose_env" --version "$next" > "$work/update.log" 2>&1 ||
    { cat "$work/update.log"; kill $load_pid; return 1; }
  local t1=$(date +%s)
  scripts/deploy/compose-update.sh --env-file "$compose_env" --version "${image##*:}" > "$work/rollback.log" 2>&1 ||
    { cat "$work/rollback.log"; kill $load_pid; return 1; }
  local t2=$(date +%s)
  touch "$work/load.stop"
  wait $load_pid || { cat "$work/load.json"; record "compose: rolling update under load" "FAIL: $(cat "$work/load.json")"; return 1; }
  record "compose: rolling update api-1, api-2 -> :$next, then rollback" "update $((t1 - t0)) s, rollback $((t2 - t1)) s, load $(cat "$work/load.json")"
  # down -v leaves nothing behind.
  scripts/deploy/compose.sh --env-file "$compose_env" down -v > "$work/down.log" 2>&1
  compose_env=""
  local left
  left="$(podman ps -a -q --filter "label=com.docker.compose.project=$run" | wc -l) containers, $(new_volumes) volumes, $(podman network ls --format '{{.Name}}' | grep -c "^${run}_" || true) networks"
  [ "$left" = "0 containers, 0 volumes, 0 networks" ] || { record "compose: down -v" "FAIL: left $left"; return 1; }
  record "compose: down -v" "left $left"
}

# The redis-cluster profile: six Redis nodes and the one-shot init, and an API replica whose cache
# and rate limits live in the cluster (REDIS_URL empty, REDIS_CLUSTER_NODES set in the env file);
# then a master container killed, and the API ready on the cluster again once its replica took over.
phase_compose_cluster() {
  ensure_image
  eval "$(scripts/containers/base-images.sh)"
  compose_env="$work/.env.cluster"
  scripts/deploy/make-env.sh --domain api.facesocial.test --out "$compose_env" --image "${image%:*}" \
    --version "${image##*:}" --tls-dir "$work/tls-cluster" --backup-dir "$work/backups-cluster" \
    --secrets-dir "$work/secrets-cluster" > /dev/null
  local password
  password=$(sed -n 's/^REDIS_PASSWORD=//p' "$compose_env")
  sed -i -e 's/^REDIS_URL=.*/REDIS_URL=/' \
    -e "s|^REDIS_CLUSTER_NODES=.*|REDIS_CLUSTER_NODES=redis://:$password@redis-node-1:6379,redis-node-2:6379,redis-node-3:6379|" "$compose_env"
  {
    echo "HTTP_PORT=$(free_port)"; echo "HTTPS_PORT=$(free_port)"; echo "PROMETHEUS_PORT=$(free_port)"
    echo "GRAFANA_PORT=$(free_port)"; echo "API_CPUS=1"; echo "API_MEMORY=3g"
    third_party POSTGRES_IMAGE docker.io/library/postgres:16-bookworm postgres
    third_party REDIS_IMAGE docker.io/library/redis:7-bookworm redis
  } >> "$compose_env"
  set -a; . "$compose_env"; set +a
  export COMPOSE_PROJECT_NAME=${run}c
  local start=$(date +%s) end ready api=${run}c_api-1_1
  scripts/deploy/compose.sh --env-file "$compose_env" up -d redis-cluster-init api-1 > "$work/cluster-up.log" 2>&1 ||
    { tail -30 "$work/cluster-up.log"; return 1; }
  readiness() { podman exec "$api" curl -s http://127.0.0.1:8000/health/ready 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["status"], d["checks"]["cache"]["status"])' 2>/dev/null; }
  end=$(( start + 240 ))
  until [ "$(readiness)" = "ready ok" ]; do
    [ "$(date +%s)" -lt "$end" ] || { record "compose cluster: api-1 ready on the cluster" "FAIL: $(readiness)";
      podman logs --tail 20 "${run}c_redis-cluster-init_1"; podman logs --tail 20 "$api"; return 1; }
    sleep 2
  done
  # Read the whole log before grep: under pipefail, `grep -q` leaving early makes podman logs fail
  # with SIGPIPE, which read as "not found" although the line was there.
  # The probe's log line may also reach podman logs a moment after the answer.
  local logs
  end=$(( $(date +%s) + 20 ))
  until logs=$(podman logs "$api" 2>&1); grep -Eq 'masters(=|":")redis-node-' <<< "$logs" ||
    [ "$(date +%s)" -ge "$end" ]; do sleep 1; done
  grep -Eq 'masters(=|":")redis-node-' <<< "$logs" ||
    { record "compose cluster: slot map by node names" "FAIL: $(podman logs "$api" 2>&1 | grep -i 'redis' | tail -3)"; return 1; }
  record "compose cluster: init + api-1 ready, cache on the cluster" "$(( $(date +%s) - start )) s; masters $(podman logs "$api" 2>&1 | grep -Eo 'masters(=|":")[^ "]*' | head -1 | sed -E 's/masters(=|":")//')"
  # Cached results land on the cluster's masters.
  podman cp "${FACESOCIAL_TESTDATA:-$root/../shared/testdata}/obama.jpg" "$api:/tmp/obama.jpg" 2>/dev/null ||
    podman exec -i "$api" sh -c 'cat > /tmp/obama.jpg' < "${FACESOCIAL_TESTDATA:-$root/../shared/testdata}/obama.jpg"
  # Production refuses anonymous analysis: the admin of the env file signs in.
  local token
  token=$(podman exec "$api" curl -fsS -H 'Content-Type: application/json' \
    -d "{\"email\":\"$FACESOCIAL_ADMIN_EMAIL\",\"password\":\"$FACESOCIAL_ADMIN_PASSWORD\"}" \
    http://127.0.0.1:8000/v1/auth/login | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])') ||
    { record "compose cluster: sign-in" "FAIL"; return 1; }
  local keys=0 n
  for t in 0.51 0.52 0.53 0.54 0.55 0.56 0.57 0.58; do
    podman exec "$api" curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: image/jpeg' \
      --data-binary @/tmp/obama.jpg "http://127.0.0.1:8000/v1/detect?confidence_threshold=$t" 2>/dev/null ||
      { record "compose cluster: detect" "FAIL"; return 1; }
  done
  for i in 1 2 3 4 5 6; do
    n=$(podman exec -e REDISCLI_AUTH="$password" "${run}c_redis-node-${i}_1" redis-cli --scan --pattern 'fs:result:*' 2>/dev/null | wc -l)
    keys=$((keys + n))
  done
  [ "$keys" -ge 8 ] || { record "compose cluster: cached results in the cluster" "FAIL: $keys keys"; return 1; }
  record "compose cluster: 8 detect results cached on the masters" "$keys keys"
  # A master's container killed: degraded, then ready once its replica took over.
  local victim="" role
  for i in 1 2 3; do
    role=$(podman exec -e REDISCLI_AUTH="$password" "${run}c_redis-node-${i}_1" redis-cli role 2>/dev/null | head -1)
    [ "$role" = master ] && { victim=${run}c_redis-node-${i}_1; break; }
  done
  [ -n "$victim" ] || { record "compose cluster: a master to kill" "FAIL: none of nodes 1-3 is a master"; return 1; }
  local killed degraded="" back=""
  podman kill "$victim" > /dev/null
  killed=$(date +%s)
  end=$(( killed + 90 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    ready=$(readiness)
    [ "$ready" = "degraded degraded" ] && [ -z "$degraded" ] && degraded=$(( $(date +%s) - killed ))
    [ -n "$degraded" ] && [ "$ready" = "ready ok" ] && { back=$(( $(date +%s) - killed )); break; }
    podman exec "$api" curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: image/jpeg' \
      --data-binary @/tmp/obama.jpg http://127.0.0.1:8000/v1/detect 2>/dev/null || { record "compose cluster: detect while a master is lost" "FAIL"; return 1; }
    sleep 0.5
  done
  [ -n "$back" ] || { record "compose cluster: master killed" "FAIL: readiness $ready (degraded after ${degraded:-never})"; return 1; }
  record "compose cluster: master container killed" "degraded after ${degraded} s, ready on the cluster again after ${back} s; detect 200 throughout"
  scripts/deploy/compose.sh --env-file "$compose_env" down -v > "$work/cluster-down.log" 2>&1
  compose_env=""
  local left
  left="$(podman ps -a -q --filter "label=com.docker.compose.project=${run}c" | wc -l) containers, $(new_volumes) volumes, $(podman network ls --format '{{.Name}}' | grep -c "^${run}c_" || true) networks"
  [ "$left" = "0 containers, 0 volumes, 0 networks" ] || { record "compose cluster: down -v" "FAIL: left $left"; return 1; }
  record "compose cluster: down -v" "left $left"
}

for phase in $phases; do
  say "phase $phase"
  "phase_${phase//-/_}"
done
