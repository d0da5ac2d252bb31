#!/usr/bin/env bash
# The GPU benchmark, on the GPU machine from the repository root (no cargo there: it runs the
# prebuilt dist/cuda/zoo from scripts/build-cuda.sh):
#   bash scripts/bench-gpu.sh [OUT_DIR] [gpu_bench.py options: --models, --backend, --no-transformers]
# Writes random-weight bf16 checkpoints of Qwen2.5-0.5B, Mistral-7B and Qwen2.5-14B (one at a
# time, deleted after use), runs `zoo bench` on each GPU backend and transformers eager on the
# same shapes, measures copy bandwidth, and prints the table with % of roofline.
set -euo pipefail
out="${1:-${OUT:-/tmp/zoo-gpu-bench}}"
shift || true
mkdir -p "$out"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
backends=(--backend cuda)
dist/cuda/zoo list | grep -q '^ *candle-cuda ' && backends+=(--backend candle-cuda)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 xtask/python/gpu_bench.py --zoo dist/cuda/zoo --out "$out" "${backends[@]}" "$@" 2>&1 | tee "$out/bench.txt"
