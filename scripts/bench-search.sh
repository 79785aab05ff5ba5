#!/usr/bin/env bash
# The identify search benchmark: FaceSocial's index (release build) and the numpy / FAISS
# brute-force baselines, on the same sizes, in one run. Results go to docs/benchmarks.md by hand.
#
#   scripts/bench-search.sh [rows] [queries]      # defaults: 100000,1000000 and 200
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
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
