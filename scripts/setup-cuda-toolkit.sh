#!/usr/bin/env bash
# Prepares a CUDA 13.0 build root from PyPI's NVIDIA wheels, for building candle's CUDA kernels on a
# machine without a GPU or CUDA toolkit (candle needs nvcc at build time and links libcuda
# dynamically). Prints the root's path. Idempotent; cached in .cache/cuda-root.
#
# - nvcc/runtime/cublas/curand/nvrtc 13.0.x: their PTX must be accepted by the GPU machine's
#   CUDA 13.0 driver (newer nvcc may emit PTX it rejects);
# - lib64/ gets unversioned symlinks and a *stub* libcuda.so (soname libcuda.so.1) defining every
#   cu* symbol cudarc's driver bindings declare, as empty functions: it only satisfies the linker;
#   the real driver library replaces it at run time. Never carry it to the GPU machine.
set -euo pipefail
root_dir="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root_dir/.cache"
root="$cache/cuda-root"
venv="$cache/cuda-venv"
if [ -x "$root/bin/nvcc" ] && [ -f "$root/lib64/libcuda.so" ] && [ -f "$root/lib64/libnccl.so" ]; then echo "$root"; exit 0; fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet \
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-cccl==13.0.85 nvidia-nvvm==13.0.88 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-cublas==13.0.2.14 "nvidia-curand<10.5"
cu="$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)"
mkdir -p "$root/lib64"
for d in bin include nvvm; do ln -sfn "$cu/$d" "$root/$d"; done
for lib in cudart cublas cublasLt curand nvrtc; do
  real="$(ls "$cu"/lib/lib$lib.so.* | sort | head -1)"
  ln -sf "$real" "$root/lib64/lib$lib.so"
  ln -sf "$real" "$root/lib64/$(basename "$real")"
done
# The stub driver library: every cu* function cudarc's bindings name, as an empty C function.
# cudarc's sources must be in cargo's registry (a fresh machine has none yet).
(cd "$root_dir" && cargo fetch --quiet >&2)
cudarc="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | sort -V | tail -1)"
grep -o "fn cu[A-Za-z0-9_]*" "$cudarc/src/driver/sys/mod.rs" | sort -u | sed 's/^fn \(.*\)$/int \1(void) { return 0; }/' > "$root/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/libcuda.so" "$root/stub.c"
# Burn's cubecl enables cudarc's NCCL bindings, which candle's dynamic linking then links: a stub
# satisfies the linker (with --as-needed no NCCL symbol is used, so nothing needs it at run time).
grep -o "fn nccl[A-Za-z0-9_]*" "$cudarc/src/nccl/sys/mod.rs" | sort -u | sed 's/^fn \(.*\)$/int \1(void) { return 0; }/' > "$root/stub_nccl.c"
gcc -shared -fPIC -Wl,-soname,libnccl.so.2 -o "$root/lib64/libnccl.so" "$root/stub_nccl.c"
echo "$root"
