#!/usr/bin/env bash
# Fetch CUDA 13.0's compiler (nvcc) and runtime headers through pip, for building the GPU path
# on a machine without the CUDA toolkit:
#
#   bash scripts/fetch-cuda.sh              # into target/cuda (or give a folder)
#   source target/cuda/env.sh               # CUDA_HOME, PATH, LIBRARY_PATH, CUDA_COMPUTE_CAP
#   cargo build --release --features cuda
#
# The binary needs libcudart.so.13 to start (env.sh puts this folder's on LD_LIBRARY_PATH) and
# loads the others (libcuda from the driver; libcublas, libcurand, libnvrtc from the toolkit or
# the nvidia-cublas / nvidia-curand / nvidia-cuda-nvrtc wheels, on LD_LIBRARY_PATH) when it
# first uses the GPU, so it also runs, on the CPU, where there is none. CUDA_COMPUTE_CAP picks the
# GPU generation the kernels are compiled for: 90 (H100/H200) unless set; 80 for A100, 89 for
# L4/RTX 40xx. Linux x86-64 only; about 270 MB unpacked.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
dest="${1:-$root/target/cuda}"
source "$here/fetch-wheels.sh"
fetch_wheels "$here/cuda-requirements.txt" "$dest" CUDA
cuda="$dest/nvidia/cu13"
chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/*
# The nvcc wheel keeps crt/ beside the binaries; the toolkit's headers include it from include/.
cp -rn "$cuda/bin/crt" "$cuda/include/"
# candle-kernels links -lcudart; the wheel has only the versioned name.
ln -sf libcudart.so.13 "$cuda/lib/libcudart.so"
cat > "$dest/env.sh" <<ENV
export CUDA_HOME="$cuda"
export PATH="$cuda/bin:\$PATH"
export LIBRARY_PATH="$cuda/lib\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$cuda/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
ENV
probe="$(mktemp -d)"
printf '__global__ void add_one(float *x) { x[threadIdx.x] += 1.0f; }\n' >"$probe/probe.cu"
if ! "$cuda/bin/nvcc" --ptx -arch=sm_80 "$probe/probe.cu" -o "$probe/probe.ptx"; then
  echo "error: nvcc in $cuda cannot compile a kernel; delete $dest and run again" >&2
  exit 1
fi
rm -rf "$probe"
echo "nvcc is in $cuda/bin. Build with:"
echo "  source $dest/env.sh && cargo build --release --features cuda"
