#!/usr/bin/env bash
# The ONNX Runtime engine on an NVIDIA machine: reports what it could check and what it could not.
#   1. the driver and GPU (nvidia-smi, NVML),
#   2. the GPU build of onnxruntime and its NVIDIA libraries (FACESOCIAL_GPU=cuda setup, or
#      libraries already on the machine),
#   3. CUDA (and TensorRT) inference on the test photos against OpenVINO on CPU (`bench engines`),
#   4. the engine tests with a GPU present (the fallback test then asserts the model is on CUDA:0),
#   5. the server with FACESOCIAL_CUDA_DEVICES=0: /v1/detect, and /system/vram when it exists.
# Run from the repository root: scripts/gpu/check-onnxruntime.sh [testdata-folder]
# On a host without network or Swift (scripts/gpu/offline-bundle.sh): FACESOCIAL_SKIP_SETUP=1 skips
# the setup step, FACESOCIAL_BIN names the binary (.build/release/facesocial) and ORT_LIB_DIR the
# ONNX Runtime folder (.deps/onnxruntime/lib).
set -uo pipefail
cd "$(dirname "$0")/../.."
testdata=${1:-${FACESOCIAL_TESTDATA:-../shared/testdata}}
bin=${FACESOCIAL_BIN:-.build/release/facesocial}
ort_lib=${ORT_LIB_DIR:-.deps/onnxruntime/lib}
checked=()
unchecked=()
ok() { checked+=("$*"); printf '\033[1;32m[ok]\033[0m %s\n' "$*"; }
no() { unchecked+=("$*"); printf '\033[1;33m[not checked]\033[0m %s\n' "$*"; }
section() { printf '\n\033[1;34m== %s ==\033[0m\n' "$*"; }

section "driver and GPU"
if command -v nvidia-smi > /dev/null && nvidia-smi > /dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used --format=csv
  driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
  cuda=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)
  ok "driver $driver, highest CUDA the driver supports: $cuda (onnxruntime-gpu 1.31.1 needs CUDA 13, driver >= 580)"
else
  no "nvidia-smi: no NVIDIA driver or GPU visible"
fi

section "ONNX Runtime GPU build and NVIDIA libraries"
if [ "${FACESOCIAL_SKIP_SETUP:-}" = 1 ]; then
  no "setup with FACESOCIAL_GPU=cuda skipped (FACESOCIAL_SKIP_SETUP=1); using what is on the machine"
elif FACESOCIAL_GPU=cuda scripts/setup.sh run; then
  ok "setup with FACESOCIAL_GPU=cuda (GPU wheel, NVIDIA libraries, release build, models)"
else
  no "setup with FACESOCIAL_GPU=cuda failed (no network to PyPI/Debian here?); trying what is on the machine"
fi
# shellcheck source=../lib/gpu-env.sh
source scripts/lib/gpu-env.sh
# Libraries the CUDA provider needs (readelf NEEDED of libonnxruntime_providers_cuda.so, + cuDNN).
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcufft.so.12 libcudnn.so.9; do
  found=""
  for dir in ${LD_LIBRARY_PATH//:/ } /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
    [ -e "$dir/$lib" ] && found="$dir" && break
  done
  [ -z "$found" ] && found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l { print $NF; exit }' | xargs -r dirname)
  if [ -z "$found" ]; then
    found=$(find / -xdev -name "$lib" -path '*nvidia*' 2>/dev/null | head -1 | xargs -r dirname)
    [ -n "$found" ] && export LD_LIBRARY_PATH="$found${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  if [ -n "$found" ]; then ok "$lib in $found"; else no "$lib not found: the CUDA provider cannot attach"; fi
done
providers=$ort_lib/libonnxruntime_providers_cuda.so
if [ -f "$providers" ]; then ok "GPU build of libonnxruntime ($(cat "$ort_lib/VERSION"))"; else no "no GPU build of libonnxruntime in $ort_lib"; fi

section "CUDA inference on the test photos (bench engines)"
if [ -x "$bin" ]; then
  out=$(mktemp)
  "$bin" bench engines --testdata "$testdata" --iterations 20 \
    --targets openvino@CPU,onnxruntime@CPU,onnxruntime@CUDA:0,onnxruntime@TENSORRT:0 2>&1 | tee "$out"
  if grep -q '^onnxruntime@CUDA:0 unavailable' "$out"; then
    no "CUDA inference: $(grep '^onnxruntime@CUDA:0 unavailable' "$out" | head -1)"
  elif grep -q 'onnxruntime@CUDA:0' "$out"; then
    ok "CUDA inference: $(grep -E '^ *onnxruntime@CUDA:0 +(yes|NO)' "$out" | tr -s ' ')"
  else
    no "bench engines did not run"
  fi
  grep -q '^onnxruntime@TENSORRT:0 unavailable' "$out" && no "TensorRT: $(grep '^onnxruntime@TENSORRT:0 unavailable' "$out" | head -1)"
else
  no "no release binary ($bin): CUDA inference"
fi

section "engine tests with the GPU"
if command -v swift > /dev/null; then
  if FACESOCIAL_TESTDATA="$testdata" swift build --build-tests > /dev/null \
    && FACESOCIAL_TESTDATA="$testdata" swift test --skip-build --filter 'ONNXRuntimeEngineTests|GPUFallbackTests'; then
    ok "ONNXRuntimeEngineTests and GPUFallbackTests"
  else
    no "engine tests failed (see above)"
  fi
else
  no "swift is not installed: engine tests"
fi

section "server on CUDA:0"
if [ -x "$bin" ]; then
  port=18765
  FACESOCIAL_CUDA_DEVICES=0 FACESOCIAL_PORT=$port FACESOCIAL_DATA_DIR=$(mktemp -d) "$bin" serve > /tmp/facesocial-gpu.log 2>&1 &
  pid=$!
  for _ in $(seq 60); do curl -sf "localhost:$port/health" > /dev/null && break; sleep 1; done
  if curl -sf -F "image=@$testdata/two_people.jpg" "localhost:$port/v1/detect" | head -c 300; then
    echo
    ok "/v1/detect with FACESOCIAL_CUDA_DEVICES=0"
  else
    no "/v1/detect with FACESOCIAL_CUDA_DEVICES=0"
  fi
  grep -i "device unavailable" /tmp/facesocial-gpu.log && no "CUDA:0 was unavailable to the server (reason above)"
  code=$(curl -s -o /tmp/facesocial-vram.json -w '%{http_code}' "localhost:$port/system/vram")
  if [ "$code" = 200 ]; then
    cat /tmp/facesocial-vram.json
    echo
    ok "/system/vram (NVML readings)"
    # Placement: yunet (critical) on CUDA.0, its footprint NVML's used-memory delta.
    if python3 - /tmp/facesocial-vram.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
gpu = next((x for x in d["devices"] if x["name"] == "CUDA.0"), None)
assert gpu and gpu["placeable"], f"CUDA.0 not placeable: {gpu and gpu.get('unavailable_reason')}"
models = {m["id"]: m["bytes"] for p in gpu["pools"] for m in p["models"]}
assert "yunet" in models, f"yunet not on CUDA.0: {gpu['pools']}"
print(f"CUDA.0 budget {gpu['budget_bytes']} bytes; resident {models}")
PY
    then ok "yunet placed on CUDA.0 by the memory manager"; else no "placement on CUDA.0 (see above)"; fi
    models=$(curl -s "localhost:$port/system/models")
    echo "$models" | python3 -c 'import json,sys; [print(m["id"], m.get("device"), m.get("bytes"), m.get("bytes_source")) for m in json.load(sys.stdin)["data"]["models"]]' || true
    if echo "$models" | python3 -c 'import json,sys; m={x["id"]: x for x in json.load(sys.stdin)["data"]["models"]}; sys.exit(0 if m["yunet"].get("bytes_source") == "device" else 1)'; then
      ok "footprint measured as NVML's used-memory delta (bytes_source=device)"
    else
      no "footprint from NVML (bytes_source is not device)"
    fi
  else
    no "/system/vram answered $code (the memory manager's route is not in this build)"
  fi
  kill "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null

  # Fallback: a GPU budget too small for SFace sends it to a CPU pool, counted in /metrics.
  FACESOCIAL_CUDA_DEVICES=0 FACESOCIAL_DEVICE_BUDGETS=CUDA.0=1MB FACESOCIAL_PORT=$port \
    FACESOCIAL_DATA_DIR=$(mktemp -d) "$bin" serve > /tmp/facesocial-gpu2.log 2>&1 &
  pid=$!
  for _ in $(seq 60); do curl -sf "localhost:$port/health" > /dev/null && break; sleep 1; done
  curl -s -F "image1=@$testdata/obama.jpg" -F "image2=@$testdata/obama2.jpg" "localhost:$port/v1/verify" | head -c 300; echo
  if curl -s "localhost:$port/metrics" | grep -E '^model_fallback_total\{model="sface".*\} [1-9]'; then
    ok "a model that does not fit on CUDA.0 runs on CPU and is counted (model_fallback_total)"
  else
    no "fallback to CPU counted for sface with a 1 MB GPU budget"
  fi
  kill "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null
else
  no "no release binary: server on CUDA:0"
fi

section "summary"
for line in "${checked[@]}"; do echo "checked:     $line"; done
for line in "${unchecked[@]}"; do echo "not checked: $line"; done
