#!/usr/bin/env bash
# Finds or builds one of llama.cpp's tools (llama-bench, llama-server) for the comparisons against
# zoo (llamacpp_bench.sh, `cargo xtask bench-serve`); prints its path on stdout, progress on stderr.
#
# llama.cpp is built from the source vendored in PyPI's llama-cpp-python sdist (the only way to get
# it here: registries only), all of it under .cache/ (gitignored), nothing in the repo:
#   .cache/assets/llama_cpp_python-<ver>.tar.gz   the sdist (`pip download --no-deps --no-binary`)
#   .cache/llama.cpp-src/                         its vendor/llama.cpp
#   .cache/cmake-venv/                            a throwaway venv with PyPI's cmake (if none on PATH)
#   .cache/llama.cpp-build/                       CPU-only Release build (GGML_NATIVE=ON, no curl,
#                                                 static; the server without its web UI)
# Every step is skipped when its output is already there. In a git worktree, a tool already built
# in the main checkout's .cache/llama.cpp-build is used as is, and its sdist is copied, not
# downloaded again.
#
# Usage: xtask/python/llamacpp_build.sh TARGET       (TARGET: llama-bench, llama-server, ...)
#        xtask/python/llamacpp_build.sh source       (the unpacked source directory, not built)
# Environment: JOBS=N parallel build jobs (default: 2; the build runs under `nice -n 10`).
set -euo pipefail
target="${1:?usage: llamacpp_build.sh TARGET}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$root/.cache"
LLAMA_CPP_PYTHON_VERSION=0.3.36
jobs="${JOBS:-2}"
build="$cache/llama.cpp-build"
tool="$build/bin/$target"

if [ -x "$tool" ]; then
  echo "$tool"
  exit 0
fi
main_checkout="$(git -C "$root" worktree list --porcelain | sed -n '1s/^worktree //p')"
if [ -n "$main_checkout" ] && [ -x "$main_checkout/.cache/llama.cpp-build/bin/$target" ]; then
  echo "$main_checkout/.cache/llama.cpp-build/bin/$target"
  exit 0
fi

# 1. The sdist. A copy already downloaded into the main checkout's .cache/assets is reused.
sdist="$cache/assets/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
  mkdir -p "$cache/assets"
  if [ -n "$main_checkout" ] && [ -f "$main_checkout/.cache/assets/$(basename "$sdist")" ]; then
    cp "$main_checkout/.cache/assets/$(basename "$sdist")" "$sdist"
  else
    echo "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (sdist)" >&2
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python -d "$cache/assets" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
  fi
fi

# 2. Its vendored llama.cpp (the main checkout's, when only the source is asked for and it has one).
src="$cache/llama.cpp-src"
if [ "$target" = source ] && [ ! -f "$src/CMakeLists.txt" ] && [ -n "$main_checkout" ] &&
  [ -f "$main_checkout/.cache/llama.cpp-src/CMakeLists.txt" ]; then
  echo "$main_checkout/.cache/llama.cpp-src"
  exit 0
fi
if [ ! -f "$src/CMakeLists.txt" ]; then
  rm -rf "$src" && mkdir -p "$src"
  tar -xzf "$sdist" -C "$src" --strip-components=3 \
    "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
fi
if [ "$target" = source ]; then
  echo "$src"
  exit 0
fi

# 3. cmake: the one on PATH, else PyPI's in a throwaway venv.
if command -v cmake >/dev/null; then
  cmake=cmake
else
  cmake="$cache/cmake-venv/bin/cmake"
  if [ ! -x "$cmake" ]; then
    python3 -m venv "$cache/cmake-venv" >&2
    "$cache/cmake-venv/bin/pip" install --quiet cmake >&2
  fi
fi

# 4. The tool (CPU only, tuned for this CPU). Configuring again is cheap and keeps an older build
# directory (configured without the server) usable.
echo "building llama.cpp's $target under $build (a few minutes)" >&2
"$cmake" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF \
  -DBUILD_SHARED_LIBS=OFF >/dev/null
nice -n 10 "$cmake" --build "$build" --config Release -j "$jobs" --target "$target" >&2
[ -x "$tool" ] || { echo "the build did not produce $tool" >&2; exit 1; }
echo "$tool"
