#!/usr/bin/env bash
# Start-to-ready time with the critical models, and RSS against the model footprints with every
# model loaded (the memory target of docs/benchmarks.md). Release build; bounded (a few seconds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh run >/dev/null
work=$(mktemp -d)
port=${BENCH_PORT:-8121}
run_server() {
  FACESOCIAL_PORT=$port FACESOCIAL_DATA_DIR=$work/data FACESOCIAL_LOG_LEVEL=warning "$@" \
    .build/release/facesocial serve >"$work/server.log" 2>&1 &
  pid=$!
}
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

start=$(date +%s.%N)
run_server env
until curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null; do sleep 0.02; done
ready=$(date +%s.%N)
printf 'start to ready (critical models loaded): %.2f s\n' "$(echo "$ready - $start" | bc)"
kill $pid; wait $pid 2>/dev/null || true

models=$(python3 -c 'import json; print(",".join(m["id"] for m in json.load(open("models/manifest.json"))["models"]))')
# The memory profile is an admin route: a throw-away admin for this run signs in.
password=$(head -c 18 /dev/urandom | base64)
run_server env FACESOCIAL_PRELOAD_MODELS="$models" FACESOCIAL_ADMIN_EMAIL=bench@example.com \
  FACESOCIAL_ADMIN_PASSWORD="$password" FACESOCIAL_BCRYPT_COST=4
until curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null; do sleep 0.05; done
token=$(curl -sf -H 'Content-Type: application/json' \
  -d "{\"email\": \"bench@example.com\", \"password\": \"$password\"}" \
  "http://127.0.0.1:$port/v1/auth/login" | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["access_token"])')
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/system/memory-profile" | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
total = d["model_bytes"]
rss = d["rss_bytes"]
print("per model (MB): " + ", ".join(f"{k} {v/2**20:.0f}" for k, v in sorted(d["models"].items())))
verdict = "met" if rss <= 1.5 * total + 150 * 2**20 else "missed"
print(f"all models loaded: RSS {rss/2**20:.0f} MB, model footprints {total/2**20:.0f} MB, "
      f"target 1.5 x footprints + 150 MB = {1.5*total/2**20 + 150:.0f} MB: {verdict}")
'
