#!/usr/bin/env bash
# Decode speed of zoo next to llama.cpp's, on the same GGUF, on this machine (issue 8, item 6).
#
# llama.cpp is built from the source vendored in PyPI's llama-cpp-python sdist (the only way to get
# it here: registries only), all of it under .cache/ (gitignored), nothing in the repo:
#   .cache/assets/llama_cpp_python-<ver>.tar.gz   the sdist (`pip download --no-deps --no-binary`)
#   .cache/llama.cpp-src/                         its vendor/llama.cpp
#   .cache/cmake-venv/                            a throwaway venv with PyPI's cmake (if none on PATH)
#   .cache/llama.cpp-build/                       CPU-only Release build (GGML_NATIVE=ON, no curl)
# Every step is skipped when its output is already there.
#
# Usage: xtask/python/llamacpp_bench.sh [MODEL]
#   MODEL        default: $ZOO_DEFAULT_MODEL, else ~/.cache/zoo/models/SmolLM2-135M-Instruct.Q4_1.gguf
#                (scripts/fetch-default-model.sh fetches it)
# Environment:
#   THREADS="N…" thread counts, the same for both (default: "1 2"; on a loaded machine llama.cpp's
#                spinning thread pool loses much more than zoo when its threads are descheduled)
#   TOKENS=N     tokens to decode (default: 64)
#   RUNS=N       runs of each; the table shows the median (default: 5)
#   ZOO_BIN=PATH the zoo binary to measure, used as is; default: `cargo build --release -p zoo-cli`
#                (after waiting for any other cargo to finish) and $CARGO_TARGET_DIR/release/zoo
#   PROMPT=TEXT  zoo's prompt (default: "Once upon a time", which greedy decoding continues past 64
#                tokens; "The capital of France is" stops at EOS after 30)
#   JOBS=N       parallel build jobs for llama.cpp (default: 2; the build runs under `nice -n 10`)
#
# What is compared: llama.cpp's `llama-bench -p 0 -n TOKENS` (tg TOKENS: decode from an empty context,
# one repetition per run) and the "decode N tok/s" of zoo's stats line for
# `zoo run --prompt PROMPT --max-tokens TOKENS --temperature 0` (decode after a 4-token prompt; load and
# prefill are excluded from both). A zoo run that stops early (EOS) is reported with its token count.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$root/.cache"
LLAMA_CPP_PYTHON_VERSION=0.3.36
model="${1:-${ZOO_DEFAULT_MODEL:-$HOME/.cache/zoo/models/SmolLM2-135M-Instruct.Q4_1.gguf}}"
threads="${THREADS:-1 2}"
tokens="${TOKENS:-64}"
runs="${RUNS:-5}"
jobs="${JOBS:-2}"
prompt="${PROMPT:-Once upon a time}"

[ -f "$model" ] || { echo "no model at $model (run scripts/fetch-default-model.sh)" >&2; exit 1; }

# 1. The sdist. A copy already downloaded into the main checkout's .cache/assets is reused.
sdist="$cache/assets/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
  mkdir -p "$cache/assets"
  main_checkout="$(git -C "$root" worktree list --porcelain | sed -n '1s/^worktree //p')"
  if [ -n "$main_checkout" ] && [ -f "$main_checkout/.cache/assets/$(basename "$sdist")" ]; then
    cp "$main_checkout/.cache/assets/$(basename "$sdist")" "$sdist"
  else
    echo "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (sdist)" >&2
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python -d "$cache/assets" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  fi
fi

# 2. Its vendored llama.cpp.
src="$cache/llama.cpp-src"
if [ ! -f "$src/CMakeLists.txt" ]; then
  rm -rf "$src" && mkdir -p "$src"
  tar -xzf "$sdist" -C "$src" --strip-components=3 \
    "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
fi

# 3. cmake: the one on PATH, else PyPI's in a throwaway venv.
if command -v cmake >/dev/null; then
  cmake=cmake
else
  cmake="$cache/cmake-venv/bin/cmake"
  if [ ! -x "$cmake" ]; then
    python3 -m venv "$cache/cmake-venv"
    "$cache/cmake-venv/bin/pip" install --quiet cmake
  fi
fi

# 4. llama-bench (CPU only, tuned for this CPU).
build="$cache/llama.cpp-build"
llama_bench="$build/bin/llama-bench"
if [ ! -x "$llama_bench" ]; then
  "$cmake" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
  nice -n 10 "$cmake" --build "$build" --config Release -j "$jobs" --target llama-bench
fi

# 5. zoo.
if [ -n "${ZOO_BIN:-}" ]; then
  zoo="$ZOO_BIN"
else
  while pgrep -x cargo >/dev/null; do
    echo "waiting for another cargo to finish" >&2
    sleep 10
  done
  (cd "$root" && nice -n 10 cargo build --release -p zoo-cli -j "$jobs")
  zoo="${CARGO_TARGET_DIR:-$root/target}/release/zoo"
fi
[ -x "$zoo" ] || { echo "no zoo binary at $zoo" >&2; exit 1; }

median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.1f}")' "$@"; }

# llama.cpp: one repetition per run; avg_ts of tg<tokens> in llama-bench's CSV output.
llama_run() {
  "$llama_bench" -m "$model" -p 0 -n "$tokens" -t "$1" -r 1 -o csv 2>/dev/null | python3 -c '
import csv, sys
print("%.1f" % float(list(csv.DictReader(sys.stdin))[-1]["avg_ts"]))'
}

# zoo: "decode N tok/s" of the stats line on stderr, e.g.
# [4 prompt tokens, 64 generated; prefill 40.9 tok/s, decode 12.4 tok/s; stopped: max_tokens]
zoo_run() {
  local stats ts generated
  stats="$("$zoo" run --weights "$model" --prompt "$prompt" --max-tokens "$tokens" --temperature 0 \
    --threads "$1" 2>&1 >/dev/null | grep -o '\[[0-9]* prompt tokens.*\]' | tail -1)"
  ts="$(sed -n 's/.*decode \([0-9.]*\) tok\/s.*/\1/p' <<<"$stats")"
  [ -n "$ts" ] || { echo "no decode tok/s in zoo's output: $stats" >&2; return 1; }
  generated="$(sed -n 's/.* \([0-9]*\) generated.*/\1/p' <<<"$stats")"
  [ "$generated" = "$tokens" ] || echo "warning: zoo decoded $generated tokens, not $tokens" >&2
  echo "$ts"
}

echo "model: $model" >&2
echo "zoo: $zoo" >&2
echo "threads: $threads; decode tokens: $tokens; runs: $runs (llama.cpp and zoo alternate)" >&2
echo "load before: $(uptime)" >&2

rows=()
for t in $threads; do
  llama_ts=() zoo_ts=()
  for ((i = 1; i <= runs; i++)); do
    llama_ts+=("$(llama_run "$t")")
    zoo_ts+=("$(zoo_run "$t")")
    echo "threads $t, run $i: llama.cpp ${llama_ts[-1]} tok/s, zoo ${zoo_ts[-1]} tok/s" >&2
  done
  llama_med="$(median "${llama_ts[@]}")"
  zoo_med="$(median "${zoo_ts[@]}")"
  ratio="$(python3 -c "print(f'{$zoo_med / $llama_med:.2f}')")"
  rows+=("$(printf '%7s %10s %10s %8s   %s | %s' "$t" "$llama_med" "$zoo_med" "$ratio" \
    "${llama_ts[*]}" "${zoo_ts[*]}")")
done
echo "load after: $(uptime)" >&2

echo
echo "decode tok/s, $(basename "$model"), $tokens tokens, median of $runs runs"
printf '%7s %10s %10s %8s   %s\n' threads llama.cpp zoo zoo/llama "runs: llama.cpp | zoo"
printf '%s\n' "${rows[@]}"
