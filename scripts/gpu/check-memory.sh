#!/usr/bin/env bash
# On a machine with a GPU: builds if needed, starts the server with the accelerator configured,
# prints /system/vram (with NVML's readings for NVIDIA GPUs) and /system/models, then stops it.
# FACESOCIAL_DEVICES defaults to auto (every OpenVINO accelerator, then CPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT="${FACESOCIAL_PORT:-8399}"
BIN=.build/debug/facesocial
[ -x "$BIN" ] || swift build --product facesocial
nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free --format=csv 2>/dev/null || echo "nvidia-smi: not available"
export FACESOCIAL_PORT="$PORT" FACESOCIAL_DATA_DIR="${FACESOCIAL_DATA_DIR:-$(mktemp -d)}"
export FACESOCIAL_DEVICES="${FACESOCIAL_DEVICES:-auto}"
"$BIN" serve >"${TMPDIR:-/tmp}/facesocial-gpu-check.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 1; done
curl -sf -X POST "localhost:$PORT/system/models/sface/load" >/dev/null || echo "sface load refused (see /system/models)"
echo "== /system/vram"; curl -s "localhost:$PORT/system/vram" | python3 -m json.tool
echo "== /system/models"; curl -s "localhost:$PORT/system/models" | python3 -m json.tool
