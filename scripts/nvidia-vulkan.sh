#!/usr/bin/env bash
# Runs a command with Vulkan pointed at NVIDIA's driver on a machine without a display server
# (a GPU server or container), e.g.: scripts/nvidia-vulkan.sh dist/cuda/zoo bench --backend wgpu ...
#
# NVIDIA's Vulkan driver ships in two libraries: libGLX_nvidia.so.0, which the driver's own
# icd.d/nvidia_icd.json names and which refuses to create a Vulkan instance without an X
# server ("Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'"), and
# libEGL_nvidia.so.0, which works headless. This script writes an ICD manifest naming the EGL
# one and points the Vulkan loader at it (VK_ICD_FILENAMES). When the machine has no Vulkan
# loader (libvulkan.so.1), the one scripts/build-cuda.sh copies into dist/cuda/vulkan/ is used.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL_nvidia\.so\.0'; then
  echo "nvidia-vulkan.sh: libEGL_nvidia.so.0 not found: is NVIDIA's driver (with its graphics libraries) installed?" >&2
  exit 1
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  if [ -f "$root/dist/cuda/vulkan/libvulkan.so.1" ]; then
    export LD_LIBRARY_PATH="$root/dist/cuda/vulkan${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    echo "nvidia-vulkan.sh: no Vulkan loader (libvulkan.so.1): install libvulkan1, or build with scripts/build-cuda.sh, which bundles one" >&2
    exit 1
  fi
fi
manifest="${TMPDIR:-/tmp}/zoo-nvidia-egl-icd.json"
printf '{"file_format_version": "1.0.1", "ICD": {"library_path": "libEGL_nvidia.so.0", "api_version": "1.3.0"}}\n' >"$manifest"
export VK_ICD_FILENAMES="$manifest"
exec "$@"
