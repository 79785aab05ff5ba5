#!/usr/bin/env bash
# Two FaceSocial binaries side by side on /v1/detect, /v1/verify and /v1/analyze (wrk on loopback, the same
# photos as scripts/bench-http.sh), taking turns so that both see the same machine: a change's
# before/after check (docs/benchmarks.md, "Before and after a change").
#   scripts/bench-compare.sh BEFORE_BIN AFTER_BIN [--duration 10] [--concurrency 16] [--rounds 2]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 2 ] || { echo "usage: $0 BEFORE_BIN AFTER_BIN [--duration S] [--concurrency C] [--rounds N]" >&2; exit 2; }
before=$1 after=$2
shift 2
duration=10 concurrency=16 rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
testdata=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
models=${FACESOCIAL_MODEL_DIR:-$root/var/models}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
boundary=facesocialbench
python3 bench/http/multipart.py "$work/detect.body" $boundary "image=$testdata/group6_t1.jpg"
python3 bench/http/multipart.py "$work/verify.body" $boundary "image1=$testdata/obama.jpg" "image2=$testdata/obama2.jpg"
python3 bench/http/multipart.py "$work/analyze.body" $boundary "image=$testdata/two_people.jpg"
cat > "$work/row.py" <<'PY'
import json, sys
round_, name, route, line, c = sys.argv[1:]
r = json.loads(line)
errors = r["socket_errors"] + r["non2xx"]
print(f"| {round_} | {name} | {route} c={c} | {r['requests'] / r['seconds']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {errors} |")
PY
# One tuning for both (measured once, by the first start), so both run the same precisions.
tuning=$work/tuning.json
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores" >&2
printf '| round | binary | route | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|\n'
for round in $(seq 1 "$rounds"); do
  for name in before after; do
    bin=$before; [ $name = after ] && bin=$after
    port=$((8300 + round))
    FACESOCIAL_CACHE_TTL_SECONDS=0 FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE=1000000 FACESOCIAL_RATE_LIMIT_PER_MINUTE=1000000 \
      FACESOCIAL_PORT=$port FACESOCIAL_MODEL_DIR=$models FACESOCIAL_DATA_DIR=$work/data-$name FACESOCIAL_LOG_LEVEL=warning \
      FACESOCIAL_PRELOAD_MODELS=sface FACESOCIAL_TUNING_FILE=$tuning "$bin" serve > "$work/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.2; done
    for route in detect verify analyze; do
      url=http://127.0.0.1:$port/v1/$route
      # The analyses bench-http.sh measures.
      [ "$route" = analyze ] && url="$url?analyses=embedding,attributes,liveness,quality"
      BODY_FILE=$work/$route.body BOUNDARY=$boundary wrk -t1 -c1 -d2s -s bench/http/post.lua "$url" >/dev/null
      line=$(BODY_FILE=$work/$route.body BOUNDARY=$boundary wrk -t2 -c"$concurrency" -d"${duration}s" --timeout 30s \
        -s bench/http/post.lua "$url" | sed -n 's/^RESULT //p')
      python3 "$work/row.py" "$round" "$name" "$route" "$line" "$concurrency"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
