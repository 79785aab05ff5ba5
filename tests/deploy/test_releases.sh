#!/usr/bin/env bash
# Live test: real nginx (TLS, self-signed cert made here) in front of four server processes
# (blue-1/2, green-1/2), a steady bounded load through nginx, and during it: a blue-green switch
# (promote-to-staging.sh), a good canary 5 -> 25 -> 100 % (promote-to-production.sh), rollback,
# a bad canary that must roll back by itself, and a rolling restart gated on readiness.
# Passes only with zero failed client requests. Also checks the nginx edge (TLS versions, HSTS,
# gzip, body limit, rate limit, redirect), graceful shutdown on SIGTERM, and, the load still
# running, slow clients against nginx (slow_clients.py: head and body timeouts, limit_conn).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin_src=${FACESOCIAL_BIN:-$root/.build/release/facesocial}
models=${FACESOCIAL_MODEL_DIR:-$root/var/models}
manifest=${FACESOCIAL_MODEL_MANIFEST:-$root/models/manifest.json}
testdata=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
base_port=${DEPLOY_TEST_BASE_PORT:-18110}
https_port=$((base_port + 43)) http_port=$((base_port + 80))
T=$(mktemp -d /tmp/facesocial-deploy.XXXXXX)
chmod 755 "$T"
say() { printf '\033[1;36m[releases]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[releases] FAIL:\033[0m %s\n' "$*"; exit 1; }
for tool in nginx openssl curl python3; do command -v $tool >/dev/null || fail "$tool is missing"; done
[ -x "$bin_src" ] || fail "no server binary at $bin_src (swift build -c release --product facesocial)"

export FACESOCIAL_RUN_DIR=$T/run FACESOCIAL_RELEASES_DIR=$T/releases FACESOCIAL_DEPLOY_STATE=$T/state.json
export FACESOCIAL_STOP_GRACE=20
mkdir -p "$T/run" "$T/releases" "$T/bin"
nginx_cmd="nginx -p $T/nginx/ -c conf/nginx.conf"
load_pid=""
cleanup() {
  set +e
  [ -n "$load_pid" ] && { touch "$T/stop"; wait $load_pid; }
  for n in blue-1 blue-2 green-1 green-2 solo; do scripts/deploy/instance.sh stop $n >/dev/null 2>&1; done
  [ -f "$T/nginx/run/nginx.pid" ] && kill -QUIT "$(cat "$T/nginx/run/nginx.pid")"
  if [ -n "${KEEP_DEPLOY_TMP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# Releases: one copied binary (a rebuild during the test cannot change it) under three versions;
# v1.3.0 ships a corrupt recognition model and does not preload it, so /health/ready says 200 while
# /v1/embed answers 503: only the canary's error-rate gate can catch it.
cp "$bin_src" "$T/bin/facesocial"
for v in v1.1.0 v1.2.0; do mkdir -p "$T/releases/$v"; ln -s "$T/bin/facesocial" "$T/releases/$v/facesocial"; done
cp -r "$models" "$T/models-broken"  # copies: the server sizes a symlink itself (see report)
sface=$(find "$T/models-broken" -name 'sface*.onnx' | head -1)
truncate -s 100000 "$sface"
mkdir -p "$T/releases/v1.3.0"
printf '#!/bin/sh\nFACESOCIAL_MODEL_DIR=%s FACESOCIAL_PRELOAD_MODELS= exec %s "$@"\n' "$T/models-broken" "$T/bin/facesocial" > "$T/releases/v1.3.0/facesocial"
chmod +x "$T/releases/v1.3.0/facesocial"

# Instances.
i=0
specs=()
for n in blue-1 blue-2 green-1 green-2; do
  port=$((base_port + 1 + i)); i=$((i + 1))
  mkdir -p "$T/data/$n"
  cat > "$T/run/$n.env" <<ENV
FACESOCIAL_BIN=$T/releases/v1.1.0/facesocial
FACESOCIAL_HOST=127.0.0.1
FACESOCIAL_PORT=$port
FACESOCIAL_DATA_DIR=$T/data/$n
FACESOCIAL_MODEL_DIR=$models
FACESOCIAL_MODEL_MANIFEST=$manifest
FACESOCIAL_PRELOAD_MODELS=sface
ENV
  specs+=(--instance "$n=127.0.0.1:$port@${n%-*}")
done
for n in blue-1 blue-2; do scripts/deploy/instance.sh start $n >/dev/null; done

# nginx: the shipped config, only the listen ports moved to loopback test ports.
mkdir -p "$T/nginx/conf/tls" "$T/nginx/logs" "$T/nginx/run" "$T/nginx/tmp"
chmod 777 "$T/nginx/tmp"
cp deploy/nginx/nginx.conf /etc/nginx/mime.types "$T/nginx/conf/"
mkdir -p "$T/nginx/conf/upstreams"
sed -i -e "s/listen 443 ssl http2;/listen 127.0.0.1:$https_port ssl http2;/" \
       -e "s/listen 80;/listen 127.0.0.1:$http_port;/" -e '/listen \[::\]/d' "$T/nginx/conf/nginx.conf"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$T/nginx/conf/tls/server.key" -out "$T/nginx/conf/tls/server.crt" 2>/dev/null
ca=$T/nginx/conf/tls/server.crt
python3 scripts/deploy/release.py init --nginx-cmd "$nginx_cmd" \
  --upstream-file "$T/nginx/conf/upstreams/live.conf" --access-log "$T/nginx/logs/access.log" \
  "${specs[@]}" --live blue
$nginx_cmd -t -q || fail "nginx -t"
say "nginx -t: ok"
$nginx_cmd
for n in blue-1 blue-2; do
  port=$(sed -n 's/^FACESOCIAL_PORT=//p' "$T/run/$n.env")
  for _ in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$port/health/ready)" = 200 ] && break; sleep 0.1; done
done

# --- the edge ---------------------------------------------------------------------------------
url=https://127.0.0.1:$https_port
c() { curl -s --cacert "$ca" "$@"; }
[ "$(c -o /dev/null -w '%{http_code}' $url/health/ready)" = 200 ] || fail "readiness through nginx"
c -D - -o /dev/null $url/health | grep -qi '^strict-transport-security: max-age=63072000' || fail "HSTS header"
[ "$(c -o /dev/null -w '%{http_version}' --http2 $url/health)" = 2 ] || fail "HTTP/2"
echo | openssl s_client -connect 127.0.0.1:$https_port -tls1_3 2>/dev/null | grep -q 'TLSv1.3' || fail "TLS 1.3"
if echo | openssl s_client -connect 127.0.0.1:$https_port -tls1_1 2>/dev/null | grep -q 'Cipher is [A-Z]'; then fail "TLS 1.1 accepted"; fi
[ "$(c -o /dev/null -w '%{http_code}' http://127.0.0.1:$http_port/v1/detect)" = 301 ] || fail "http -> https redirect"
c -H 'Accept-Encoding: gzip' -D - -o /dev/null $url/openapi.json | grep -qi '^content-encoding: gzip' || fail "gzip"
[ "$(c -o /dev/null -w '%{http_code}' $url/metrics)" = 404 ] || fail "/metrics must not be public"
head -c 12000000 /dev/zero > "$T/big.bin"
[ "$(c -o /dev/null -w '%{http_code}' -H 'Content-Type: image/jpeg' --data-binary @"$T/big.bin" $url/v1/detect)" = 413 ] || fail "body limit"
[ "$(c -o /dev/null -w '%{http_code}' -H 'Content-Type: image/jpeg' --data-binary @"$testdata/obama.jpg" $url/v1/detect)" = 200 ] || fail "detect through nginx"
codes=$(for _ in $(seq 40); do c -o /dev/null -w '%{http_code}\n' $url/v1/rate-limit-probe & done; wait)
n429=$(grep -c 429 <<<"$codes" || true)
[ "$n429" -ge 10 ] || fail "rate limit: only $n429 of 40 burst requests got 429"
say "edge: TLS 1.3 yes, TLS 1.1 refused, HTTP/2, HSTS, gzip, redirect, 413 over 11 MB, /metrics hidden, $n429/40 burst requests limited (429)"
sleep 3  # let the api zone refill before the steady load

# --- graceful shutdown on SIGTERM ----------------------------------------------------------------
port=$((base_port + 9))
mkdir -p "$T/data/solo"
sed -e "s/^FACESOCIAL_PORT=.*/FACESOCIAL_PORT=$port/" -e "s#^FACESOCIAL_DATA_DIR=.*#FACESOCIAL_DATA_DIR=$T/data/solo#" "$T/run/blue-1.env" > "$T/run/solo.env"
scripts/deploy/instance.sh start solo >/dev/null
for _ in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$port/health/ready)" = 200 ] && break; sleep 0.1; done
curl -s -o /dev/null -H 'Content-Type: image/jpeg' --data-binary @"$testdata/group6_t1.jpg" 127.0.0.1:$port/v1/analyze
python3 tests/deploy/graceful.py $port "$(cat "$T/run/solo.pid")" "$testdata/group6_t1.jpg" || fail "graceful shutdown"

# --- releases under load -----------------------------------------------------------------------
phase() { echo "$1" > "$T/phase"; say "phase: $1"; }
phase warmup
# Two clients: keep-alive (8 r/s) and one connection per request (4 r/s), together under the
# 10 r/s API rate limit for the API share of the mix.
python3 tests/deploy/load.py --port $https_port --cafile "$ca" --image "$testdata/obama.jpg" \
  --rate "${DEPLOY_TEST_RATE:-8}" --threads 4 --duration 280 --phase "$T/phase" --stop "$T/stop" --out "$T/load.json" &
load_pid=$!
python3 tests/deploy/load.py --port $https_port --cafile "$ca" --image "$testdata/obama.jpg" --fresh \
  --rate "${DEPLOY_TEST_FRESH_RATE:-4}" --threads 2 --duration 280 --phase "$T/phase" --stop "$T/stop" --out "$T/load-fresh.json" &
load_pid="$load_pid $!"
sleep 3
hold=${DEPLOY_TEST_HOLD:-4}
t_start=$(date +%s)

phase blue-green
scripts/promote-to-staging.sh --version=v1.1.0  # runs scripts/preflight.sh --quick first
[[ $(python3 scripts/deploy/release.py status) == *'"green"'* ]] || fail "green is not live after the switch"

phase canary-good
scripts/promote-to-production.sh --version=v1.2.0 --skip-preflight --hold=$hold --min-requests=3
[[ $(python3 scripts/deploy/release.py status) == *'"v1.2.0"'* ]] || fail "v1.2.0 not recorded as live"

phase rollback
python3 scripts/deploy/release.py rollback
python3 scripts/deploy/release.py status | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["live_colors"]==["green"], d' || fail "rollback did not restore green"
python3 scripts/deploy/release.py switch --to blue

phase canary-bad
set +e
scripts/promote-to-production.sh --version=v1.3.0 --skip-preflight --hold=$hold --min-requests=3
rc=$?
set -e
[ $rc = 2 ] || fail "bad canary: promote exited $rc, expected 2 (rolled back on the error gate)"
python3 scripts/deploy/release.py status | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["live_colors"]==["blue"], d' || fail "bad canary left traffic on green"

phase rolling-restart
python3 scripts/deploy/release.py rolling-restart --drain-wait 1

# Slow clients, the load still running: dripped heads, paused and dripped uploads and more requests
# in flight than limit_conn allows, each attack from its own loopback address (nginx limits per
# address, so the load on 127.0.0.1 is a bystander). A failure fails the test after the load's table.
phase slow-clients
slow_rc=0
python3 tests/deploy/slow_clients.py --port $https_port --cafile "$ca" --conf "$T/nginx/conf/nginx.conf" \
  --access-log "$T/nginx/logs/access.log" || slow_rc=$?

phase steady
sleep 3
touch "$T/stop"; wait $load_pid; load_pid=""
t_end=$(date +%s)

python3 - "$T/load.json" "$T/load-fresh.json" $((t_end - t_start)) <<'PY' || fail "failed requests during releases"
import json, sys
bad = 0
for path, label in ((sys.argv[1], "keep-alive clients"), (sys.argv[2], "new connection per request")):
    r = json.load(open(path))
    print(f"{label}:")
    print(f"  {'phase':<16}{'sent':>7}{'ok':>7}{'failed':>8}{'stale-retry':>13}")
    for ph, s in r["phases"].items():
        print(f"  {ph:<16}{s['sent']:>7}{s['ok']:>7}{s['failed']:>8}{s['stale_retries']:>13}  {s['status'] or ''}")
    t = r["total"]
    print(f"  {'total':<16}{t['sent']:>7}{t['sent']-t['failed']:>7}{t['failed']:>8}")
    for e in r["errors"][:10]:
        print("  error:", e)
    bad += t["failed"]
print(f"releases took {sys.argv[3]} s under load")
sys.exit(1 if bad else 0)
PY
[ $slow_rc = 0 ] || fail "slow clients"
say "PASS: zero failed requests through blue-green, canary (good and bad), rollback, rolling restart and slow clients"
