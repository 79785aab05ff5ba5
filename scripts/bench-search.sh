#!/usr/bin/env bash
# The identify search benchmark: FaceSocial's index (release build) and the numpy / FAISS
# brute-force baselines, on the same sizes, in one run. Results go to docs/benchmarks.md by hand.
#
#   scripts/bench-search.sh [rows] [queries]      # defaults: 100000,1000000 and 200
#
# Large galleries (issue 16): the exact index against the 8-bit inverted file, at 1M and 10M rows,
# on random unit vectors and on a gallery modelled on real SFace embeddings of the test photos,
# with FAISS (IndexFlatIP, IndexHNSWFlat, IndexIVFPQ) on the same vectors. About 20 minutes on
# 2 cores; needs ~25 GB of disk under $SEARCH_DATA (default a fresh temp folder, removed after).
#
#   scripts/bench-search.sh large [sizes] [probes]   # defaults: 1000000,10000000 and 64,128,256,512,1024
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "${1:-}" = large ]; then
  sizes=${2:-1000000,10000000}
  probes=${3:-64,128,256,512,1024}
  largest=$(echo "$sizes" | tr ',' '\n' | sort -n | tail -1)
  data=${SEARCH_DATA:-$(mktemp -d)}
  [ -n "${SEARCH_DATA:-}" ] || trap 'rm -rf "$data"' EXIT
  echo "== machine"
  echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  grep -o -w -E 'avx512f|avx512bw|avx512_vnni|avx_vnni|avx512_bf16|avx2' /proc/cpuinfo | sort -u | xargs
  for venv in .venv-peer .venv-bench; do [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; done
  .venv-peer/bin/pip install --quiet -r bench/peer/requirements.txt
  .venv-bench/bin/pip install --quiet numpy threadpoolctl faiss-cpu
  models=var/models
  [ -f "$models/recognition/sface_2021dec.onnx" ] || models=../shared/models
  echo "== real embeddings (YuNet + SFace, augmented test photos)"
  [ -f "$data/real.npz" ] || .venv-peer/bin/python bench/search_embeddings.py --models "$models" --out "$data/real.npz" | tail -1
  echo "== galleries ($largest rows each)"
  for kind in random realistic; do
    [ -f "$data/$kind.f32" ] || env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv-bench/bin/python \
      bench/search_gallery.py --out "$data" --kind "$kind" --rows "$largest" --real "$data/real.npz"
  done
  swift build --scratch-path .build-search -c release --product facesocial-search-bench >/dev/null
  for size in ${sizes//,/ }; do
    for kind in realistic random; do
      echo "== facesocial $kind $size"
      .build-search/release/facesocial-search-bench --data "$data" --gallery "$kind" --rows "$size" --probes "$probes"
      echo "== faiss $kind $size"
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv-bench/bin/python bench/search_faiss.py \
        --data "$data" --gallery "$kind" --rows "$size"
    done
  done
  exit 0
fi
rows=${1:-100000,1000000}
queries=${2:-200}

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

echo "== facesocial bench search (release)"
swift build -c release --product facesocial >/dev/null
.build/release/facesocial bench search --rows "$rows" --queries "$queries"

echo "== baselines"
venv="$root/.venv-bench"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy threadpoolctl
  # FAISS is optional: the numpy baseline runs without it.
  "$venv/bin/pip" install --quiet faiss-cpu || echo "faiss-cpu did not install; numpy only"
fi
# This machine may pin OpenBLAS to an old kernel for safety; the baseline runs with the kernel
# OpenBLAS picks itself (threadpoolctl prints which).
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" bench/search_baseline.py \
  --rows "$rows" --queries "$queries"
