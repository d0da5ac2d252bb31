#!/usr/bin/env bash
# Decode speed of zoo next to llama.cpp's, on the same GGUF, on this machine (issue 8, item 6).
#
# llama.cpp's llama-bench is built from the source vendored in PyPI's llama-cpp-python sdist, under
# .cache/ (gitignored), by xtask/python/llamacpp_build.sh (its header has the cache layout).
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
model="${1:-${ZOO_DEFAULT_MODEL:-$HOME/.cache/zoo/models/SmolLM2-135M-Instruct.Q4_1.gguf}}"
threads="${THREADS:-1 2}"
tokens="${TOKENS:-64}"
runs="${RUNS:-5}"
jobs="${JOBS:-2}"
prompt="${PROMPT:-Once upon a time}"

[ -f "$model" ] || { echo "no model at $model (run scripts/fetch-default-model.sh)" >&2; exit 1; }

# 1-4. llama-bench: built once under .cache/ (or the main checkout's copy), see llamacpp_build.sh.
llama_bench="$(JOBS="$jobs" bash "$root/xtask/python/llamacpp_build.sh" llama-bench)"

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
