#!/usr/bin/env bash
# Builds the CUDA-enabled `zoo` on a machine without a GPU or CUDA toolkit, into dist/cuda/,
# ready to be carried to the GPU machine (run it there with LD_LIBRARY_PATH=/usr/local/cuda/lib64).
#
# Burn 0.21's CUDA backend (cubecl-cuda → cudarc) loads the CUDA libraries at run time, so
# nothing CUDA is needed here; CUDARC_CUDA_VERSION pins cudarc's bindings to the GPU machine's
# CUDA 13.0.
#
# Usage: scripts/build-cuda.sh            (about 7–10 minutes on 2 cores, release)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/cuda}"
cargo build --release -p zoo-cli --features cuda --bin zoo
mkdir -p dist/cuda
cp "$CARGO_TARGET_DIR/release/zoo" dist/cuda/zoo
strip dist/cuda/zoo
cp scripts/gpu-check.sh xtask/python/gpu_parity.py dist/cuda/ 2>/dev/null || true
ls -la dist/cuda >&2
echo "built dist/cuda/zoo (carry dist/cuda to the GPU machine)" >&2
