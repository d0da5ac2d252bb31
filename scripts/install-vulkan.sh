#!/usr/bin/env bash
# Installs a Vulkan driver for the `wgpu` backend's tests: the Vulkan loader (libvulkan1) and
# Mesa's drivers (mesa-vulkan-drivers), whose lavapipe runs Vulkan on the CPU, so CI (no GPU)
# runs the wgpu fixtures on a real Vulkan driver. Debian/Ubuntu (apt-get); skips when a loader
# and an ICD are already there. Needs root (or sudo) when it installs.
# Usage: scripts/install-vulkan.sh
set -euo pipefail

# Globs, not `ldconfig -p | grep -q` (which fails under pipefail when grep stops reading).
have_loader() {
  compgen -G '/usr/lib/*/libvulkan.so.1' >/dev/null || compgen -G '/usr/lib/libvulkan.so.1' >/dev/null \
    || compgen -G '/lib/*/libvulkan.so.1' >/dev/null
}
icds() {
  compgen -G '/usr/share/vulkan/icd.d/*.json' || true
  compgen -G '/etc/vulkan/icd.d/*.json' || true
}
have_icd() {
  [ -n "$(icds)" ]
}

if have_loader && have_icd; then
  echo "install-vulkan: Vulkan loader and driver present ($(icds | xargs -n1 basename | tr '\n' ' '))" >&2
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-vulkan: no apt-get here: install the Vulkan loader (libvulkan.so.1) and a driver" >&2
  echo "  (Mesa's lavapipe: mesa-vulkan-drivers / vulkan-swrast / mesa-vulkan-swrast) by hand" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "install-vulkan: not root and no sudo: run as root: apt-get install mesa-vulkan-drivers libvulkan1" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
have_loader && have_icd || { echo "install-vulkan: installed, but no loader or ICD found" >&2; exit 1; }
echo "install-vulkan: installed mesa-vulkan-drivers and libvulkan1" >&2
