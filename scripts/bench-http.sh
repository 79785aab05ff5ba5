#!/usr/bin/env bash
# HTTP load benchmark: FaceSocial against the peer (FastAPI + uvicorn + onnxruntime + OpenCV, in
# bench/peer) on the same models and photos, measured in one run with wrk on loopback.
#
#   scripts/bench-http.sh [--duration 10] [--concurrency "1 4 16"]
#
# Prints a markdown table (throughput, p50/p95/p99, errors, ratios) and writes it to
# bench/results/http-<date>.md. Every run is bounded: endpoints × concurrencies × duration.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=10
concurrency="1 4 16"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
testdata=${FACESOCIAL_TESTDATA:-$root/../shared/testdata}
models=${FACESOCIAL_MODEL_DIR:-$root/var/models}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || sudo apt-get install -y -qq wrk; }
if [ ! -x .venv-peer/bin/uvicorn ] || [ ! -x .venv-peer/bin/gunicorn ]; then
  python3 -m venv .venv-peer
  .venv-peer/bin/pip install -q -r bench/peer/requirements.txt
fi
scripts/setup.sh run >/dev/null

wait_ready() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; echo "not ready: $1" >&2; return 1; }
start_facesocial() {
  # The same image is posted over and over: the result cache would answer from memory, and the
  # per-IP limit would answer 429, so both are off here to measure the work itself.
  FACESOCIAL_CACHE_TTL_SECONDS=0 FACESOCIAL_RATE_LIMIT_IP_PER_MINUTE=1000000 FACESOCIAL_RATE_LIMIT_PER_MINUTE=1000000 \
  FACESOCIAL_ADMIN_EMAIL=bench@example.com FACESOCIAL_ADMIN_PASSWORD=$admin_password FACESOCIAL_BCRYPT_COST=4 \
  FACESOCIAL_PORT=$1 FACESOCIAL_MODEL_DIR=$models FACESOCIAL_DATA_DIR=$work/data-$1 FACESOCIAL_LOG_LEVEL=warning \
    FACESOCIAL_PRELOAD_MODELS=sface FACESOCIAL_TUNING_FILE=$tuning_file \
    .build/release/facesocial serve >"$work/facesocial-$1.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$1/health/ready"
}
start_peer() { # port workers [threads per worker]
  if [ "$2" -eq 1 ]; then
    MODEL_DIR=$models .venv-peer/bin/uvicorn --app-dir bench/peer server:app --host 127.0.0.1 --port "$1" \
      --log-level warning >"$work/peer-$1.log" 2>&1 &
  else
    # Several workers run under gunicorn's process manager, as FastAPI deployments commonly do:
    # `uvicorn --workers 2` answered every keep-alive request about 40 ms late here (even
    # /health: 44 ms p50 against 0.14 ms under gunicorn), a socket-level stall, not the peer's work.
    MODEL_DIR=$models PEER_THREADS=${3:-} .venv-peer/bin/gunicorn --chdir bench/peer -k uvicorn.workers.UvicornWorker -w "$2" \
      -b "127.0.0.1:$1" --log-level warning server:app >"$work/peer-$1.log" 2>&1 &
  fi
  pids+=($!)
  wait_ready "http://127.0.0.1:$1/health"
}
admin_password=$(head -c 18 /dev/urandom | base64)
# A gallery for identify: four people enrolled from their photos, as the benchmark's admin.
make_gallery() { # base-url → prints "collection-id bearer-token"
  python3 - "$1" "$admin_password" "$testdata" <<'PY'
import json, sys, urllib.request, uuid
base, password, testdata = sys.argv[1:]
def call(path, body=None, token=None, files=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if files:
        boundary = uuid.uuid4().hex
        parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + open(files, "rb").read() + b"\r\n"]
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")
    return json.load(urllib.request.urlopen(req, timeout=60))["data"]
token = call("/v1/auth/login", {"email": "bench@example.com", "password": password})["access_token"]
collection = call("/v1/collections", {"name": "bench"}, token)["id"]
for person, photo in [("obama", "obama.jpg"), ("biden", "biden.jpg"), ("kit_harington", "kit_harington_john1.jpeg"),
                      ("rose_leslie", "rose_leslie_img1.jpg")]:
    subject = call(f"/v1/collections/{collection}/subjects", {"external_id": person, "name": person}, token)["id"]
    call(f"/v1/collections/{collection}/subjects/{subject}/faces", token=token, files=f"{testdata}/{photo}")
print(collection, token)
PY
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

boundary=facesocialbench
python3 bench/http/multipart.py "$work/detect.body" $boundary "image=$testdata/group6_t1.jpg"
python3 bench/http/multipart.py "$work/verify.body" $boundary "image1=$testdata/obama.jpg" "image2=$testdata/obama2.jpg"
python3 bench/http/multipart.py "$work/analyze.body" $boundary "image=$testdata/two_people.jpg"

results=$work/results.jsonl
run() { # name url body concurrency
  local line
  # Warm up so first-use loads are not measured.
  BODY_FILE=$work/$3.body BOUNDARY=$boundary AUTHORIZATION=${AUTHORIZATION:-} wrk -t1 -c1 -d2s -s bench/http/post.lua "$2" >/dev/null
  line=$(BODY_FILE=$work/$3.body BOUNDARY=$boundary AUTHORIZATION=${AUTHORIZATION:-} wrk -t"$(( $4 < 2 ? 1 : 2 ))" -c"$4" -d"${duration}s" --timeout 30s \
    -s bench/http/post.lua "$2" | sed -n 's/^RESULT //p')
  echo "{\"server\": \"$1\", \"endpoint\": \"$3\", \"concurrency\": $4, \"result\": $line}" >>"$results"
  echo "  $1 $3 c=$4: $line" >&2
}

# Precision and hint per model, measured now on this CPU (the server reads the same file), then
# each route's CPU time per request and the ceiling it implies, in process, before any HTTP load.
tuning_file=$work/tuning.json
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores," \
  "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|avx512_vnni|amx_bf16|amx_tile)$' | xargs)" >&2
FACESOCIAL_TUNING_FILE=$tuning_file FACESOCIAL_MODEL_DIR=$models FACESOCIAL_DATA_DIR=$work/data-tune \
  .build/release/facesocial tune --models yunet,sface,age,gender,minifas >&2
choices=$(python3 bench/http/tuning.py "$tuning_file")
echo "{\"tuning\": \"$choices\"}" >>"$results"
FACESOCIAL_TUNING_FILE=$tuning_file FACESOCIAL_MODEL_DIR=$models FACESOCIAL_DATA_DIR=$work/data-tune \
  FACESOCIAL_LOG_LEVEL=warning .build/release/facesocial bench routes --testdata "$testdata" --json "$work/ceilings.jsonl" >&2
cat "$work/ceilings.jsonl" >>"$results"

echo "FaceSocial (tuned: $choices)" >&2
start_facesocial 8101
fs_pid=${pids[-1]}
read -r collection token < <(make_gallery http://127.0.0.1:8101)
python3 bench/http/multipart.py "$work/identify.body" $boundary "image=$testdata/obama2.jpg"
for c in $concurrency; do
  AUTHORIZATION="Bearer $token" run facesocial "http://127.0.0.1:8101/v1/collections/$collection/identify" identify "$c"
  run facesocial http://127.0.0.1:8101/v1/detect detect "$c"
  run facesocial http://127.0.0.1:8101/v1/verify verify "$c"
  run facesocial "http://127.0.0.1:8101/v1/analyze?analyses=embedding,attributes,liveness,quality" analyze "$c"
done
fs_rss=$(rss_mb "$fs_pid")
kill "$fs_pid"; wait "$fs_pid" 2>/dev/null || true

# The peer with one worker, with two workers at the libraries' default threads, and with two
# workers of one onnxruntime and one OpenCV thread each (no oversubscription of the two cores).
for config in w1 w2 w2t1; do
  workers=${config:1:1}
  threads=; [ "$config" = w2t1 ] && threads=1
  echo "peer $config: $workers worker(s)${threads:+, $threads thread each}" >&2
  start_peer 8102 "$workers" "$threads"
  for c in $concurrency; do
    run "peer-$config" http://127.0.0.1:8102/v1/detect detect "$c"
    run "peer-$config" http://127.0.0.1:8102/v1/verify verify "$c"
  done
  peer_rss=$( (ps -o rss= --pid "${pids[-1]}" --ppid "${pids[-1]}" || true) | awk '{s += $1} END {printf "%.0f", s / 1024}')
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  echo "{\"server\": \"peer-$config\", \"rss_mb\": $peer_rss}" >>"$results"
done
echo "{\"server\": \"facesocial\", \"rss_mb\": $fs_rss}" >>"$results"

mkdir -p bench/results
python3 bench/http/report.py "$results" "$duration" | tee "bench/results/http-$(date +%Y%m%d-%H%M%S).md"
