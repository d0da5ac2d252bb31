#!/usr/bin/env bash
# One-command GPU smoke test, run on the GPU machine from the repository root after
# scripts/build-cuda.sh built dist/cuda/zoo here and dist/ was carried over:
#   bash scripts/gpu-check.sh [OUT_DIR]
# Lists the backends, runs the fixtures through the GPU backends against their f32 references
# (xtask/python/gpu_fixture_parity.py: f32 within 1e-4; bf16/f16 within 4× transformers' own
# error at that precision), then
# full-size parity (Qwen2.5-14B and Mistral-7B configs, random bf16 weights) against
# transformers on the GPU, with zoo's decode tokens/s.
set -uo pipefail
out="${1:-${OUT:-/tmp/zoo-gpu-out}}"
mkdir -p "$out"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
zoo=dist/cuda/zoo
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$zoo list | tee "$out/list.txt"
# zoo's CubeCL kernels against the Burn-op compositions they replace.
dist/cuda/kernel-tests --test-threads 1 2>&1 | tee "$out/kernel-tests.txt"
# Every fixture on the GPU backends against its f32 reference (tolerances in the script's doc).
backends="--backend cuda-f32 --backend cuda --backend cuda-f16"
$zoo list | grep -q '^ *candle-cuda ' && backends="$backends --backend candle-cuda"
python3 xtask/python/gpu_fixture_parity.py --zoo $zoo $backends --out "$out" 2>&1 \
  | grep -v "Loading weights" | tee "$out/fixtures-cuda.txt"
python3 xtask/python/gpu_parity.py --zoo $zoo --config qwen2.5-14b --backend cuda $(echo "$backends" | grep -o -- "--backend candle-cuda") --out "$out" 2>&1 | tail -40
python3 xtask/python/gpu_parity.py --zoo $zoo --config mistral-7b --backend cuda $(echo "$backends" | grep -o -- "--backend candle-cuda") --out "$out" 2>&1 | tail -40
