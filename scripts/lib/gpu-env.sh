# Sourced before starting the server: when the GPU build of ONNX Runtime was fetched
# (FACESOCIAL_GPU=cuda), puts its NVIDIA CUDA/cuDNN library folders on the library path. The
# Python package preloads them only for Python; a Swift binary needs the loader to find them.
_fs_ort_lib="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.deps/onnxruntime/lib"
if [ -f "$_fs_ort_lib/nvidia-lib-dirs.txt" ] && grep -q -- '-cuda$' "$_fs_ort_lib/VERSION" 2>/dev/null; then
  export LD_LIBRARY_PATH="$(paste -sd: "$_fs_ort_lib/nvidia-lib-dirs.txt")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
unset _fs_ort_lib
# CUDA numbers GPUs fastest-first by default, NVML by PCI bus; the memory manager matches CUDA.N
# (NVML) with CUDA ordinal N, so both must count the same way.
export CUDA_DEVICE_ORDER=${CUDA_DEVICE_ORDER:-PCI_BUS_ID}
