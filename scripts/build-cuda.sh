#!/usr/bin/env bash
# Builds the CUDA-enabled `zoo` on a machine without a GPU or CUDA toolkit, into dist/cuda/,
# ready to be carried to the GPU machine (run it there with LD_LIBRARY_PATH=/usr/local/cuda/lib64).
#
# Burn 0.21's CUDA backend (cubecl-cuda → cudarc) loads the CUDA libraries at run time, so
# nothing CUDA is needed here; CUDARC_CUDA_VERSION pins cudarc's bindings to the GPU machine's
# CUDA 13.0.
#
# Usage: scripts/build-cuda.sh [--candle]   (Burn only: 10–17 minutes on 2 cores, release)
#   --candle also builds candle's CUDA backend (`--backend candle-cuda`): its kernels need nvcc,
#   which scripts/setup-cuda-toolkit.sh provides from PyPI's NVIDIA wheels (+ ~9 minutes).
# The binary also has the `wgpu` backend (the same GPU through Vulkan, docs/wgpu.md); the Vulkan
# loader of this machine (`libvulkan.so.1`, from scripts/install-vulkan.sh) is copied into
# dist/cuda/vulkan/ for GPU machines that have NVIDIA's Vulkan driver but no loader.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/cuda}"
features="cuda train-cuda wgpu"
if [ "${1:-}" = "--candle" ]; then
  cuda_root="$(bash "$root/scripts/setup-cuda-toolkit.sh")"
  export PATH="$cuda_root/bin:$PATH" CUDA_ROOT="$cuda_root" CUDA_PATH="$cuda_root" CUDA_HOME="$cuda_root"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" LIBRARY_PATH="$cuda_root/lib64"
  # Find the GPU machine's CUDA libraries at run time (the stub libcuda.so stays here).
  export RUSTFLAGS="${RUSTFLAGS:-} -L $cuda_root/lib64 -C link-arg=-Wl,-rpath,/usr/local/cuda/lib64"
  features="cuda train-cuda candle-cuda wgpu"
fi
cargo build --release -p zoo-cli --features "$features" --bin zoo
mkdir -p dist/cuda
cp "$CARGO_TARGET_DIR/release/zoo" dist/cuda/zoo
strip dist/cuda/zoo
# The CubeCL kernel tests (crates/backends/burn/tests/kernels.rs), run there by gpu-check.sh.
kernel_tests="$(cargo test --release -p zoo-backend-burn --features cuda,autodiff --test kernels --no-run \
  --message-format=json | grep -o '"executable":"[^"]*kernels-[^"]*"' | tail -1 | cut -d'"' -f4)"
cp "$kernel_tests" dist/cuda/kernel-tests
strip dist/cuda/kernel-tests
# Host cost of CubeCL launches and GEMV bandwidth per projection (docs/gpu.md).
cargo build --release -p zoo-backend-burn --features cuda --example gpu_microbench
cp "$CARGO_TARGET_DIR/release/examples/gpu_microbench" dist/cuda/gpu-microbench
strip dist/cuda/gpu-microbench
loader="$(ldconfig -p 2>/dev/null | grep -o '/[^ ]*libvulkan\.so\.1$' | head -1 || true)"
if [ -n "$loader" ]; then
  mkdir -p dist/cuda/vulkan && cp -L "$loader" dist/cuda/vulkan/libvulkan.so.1
else
  echo "no Vulkan loader here (scripts/install-vulkan.sh): dist/cuda/vulkan/ not made" >&2
fi
cp scripts/gpu-check.sh xtask/python/gpu_parity.py dist/cuda/ 2>/dev/null || true
ls -la dist/cuda >&2
echo "built dist/cuda/zoo (carry dist/cuda to the GPU machine)" >&2
