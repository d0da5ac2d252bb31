#!/usr/bin/env bash
# Decode and prefill speed of zoo next to llama.cpp's, on the same GGUF files, on this machine
# (issues 8 and 14): the whole comparison table in one run.
#
# The models: the default model (SmolLM2-135M-Instruct Q4_1) and a 415M-parameter Mistral-
# architecture model with random weights (xtask/python/make_bench_mistral.py: Qwen2.5-0.5B's sizes,
# Mistral's 32000-token vocabulary) in f32, f16, q8_0, Q4_0 and Q4_K_M, made the way a user makes
# them: llama.cpp's own convert_hf_to_gguf.py (f32, f16) and llama-quantize (from the f32 file).
#
# llama.cpp is built by xtask/python/llamacpp_build.sh from the source vendored in PyPI's
# llama-cpp-python sdist (the only way to get it here: registries only), all of it under .cache/
# (gitignored), nothing in the repo:
#   .cache/assets/llama_cpp_python-<ver>.tar.gz   the sdist (`pip download --no-deps --no-binary`)
#   .cache/llama.cpp-src/                         its vendor/llama.cpp (with convert_hf_to_gguf.py)
#   .cache/cmake-venv/                            a throwaway venv with PyPI's cmake (if none on PATH)
#   .cache/llama.cpp-build/                       CPU-only Release build (GGML_NATIVE=ON, no curl)
#                                                 of llama-bench and llama-quantize
#   .cache/bench-models/                          the generated 415M model: HF directory and GGUFs
# Every step is skipped when its output is already there. In a git worktree, the sdist, the source
# and the binaries already in the main checkout's .cache are used from there.
# The conversion runs in the repository's Python environment (.venv, scripts/setup-python.sh:
# torch, numpy, safetensors, sentencepiece, protobuf and mistral-common, whose package ships
# Mistral's tokenizer.model); $PYTHON overrides it.
#
# Usage: xtask/python/llamacpp_bench.sh [MODEL…]
#   MODEL        `smollm2` (the default model: $ZOO_DEFAULT_MODEL, else
#                ~/.cache/zoo/models/SmolLM2-135M-Instruct.Q4_1.gguf, fetched by
#                scripts/fetch-default-model.sh), one of the 415M model's types `f32`, `f16`,
#                `q8_0`, `q4_0`, `q4_k_m`, `q4_k_m-k256` (a 201M model whose Q4_K_M is all
#                K-quants, see make_bench_mistral.py --sizes k256), or the path of any GGUF file.
#                Default: smollm2 f32 f16 q8_0 q4_0 q4_k_m q4_k_m-k256
# Environment:
#   THREADS="N…"    thread counts, the same for both (default: "1 2")
#   TOKENS=N        tokens to decode (default: 64)
#   PROMPT_TOKENS=N prompt tokens for prefill (default: 128)
#   MEASURE="…"     what to measure: "decode prefill" (default), "decode" or "prefill"
#   RUNS=N          runs of each; the table shows the median (default: 3)
#   ZOO_BIN=PATH    the zoo binary to measure, used as is; default: `cargo build --release -p
#                   zoo-cli` (after waiting for any other cargo to finish), $CARGO_TARGET_DIR/release/zoo
#   PROMPT=TEXT     zoo's decode prompt (default: "Once upon a time")
#   JOBS=N          parallel build jobs for llama.cpp (default: 2; the build runs under `nice -n 10`)
#
# What is compared, each pair in alternating runs (llama.cpp, zoo, llama.cpp, zoo…):
# - decode: llama-bench's `-p 0 -n TOKENS` (tg TOKENS: decode from an empty context, one repetition
#   per run after its warm-up) and the "decode N tok/s" of zoo's stats line for
#   `zoo run --prompt PROMPT --max-tokens TOKENS --temperature 0` (decode after a short prompt; load
#   and prefill excluded from both). A zoo run that stops early (EOS) is flagged with its count.
#   zoo's peak RSS (`/usr/bin/time`, max resident) of its last decode run is reported per file,
#   next to llama-bench's.
# - prefill: llama-bench's `-p PROMPT_TOKENS -n 0` (pp PROMPT_TOKENS) and the prefill tok/s of
#   `zoo bench --prompt-tokens PROMPT_TOKENS --gen-tokens 1 --warmup 1 --runs 1 --json`.
# The random-weight model's greedy text is meaningless; only speed and memory mean anything there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$root/.cache"
default_model="${ZOO_DEFAULT_MODEL:-$HOME/.cache/zoo/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
threads="${THREADS:-1 2}"
tokens="${TOKENS:-64}"
prompt_tokens="${PROMPT_TOKENS:-128}"
measure="${MEASURE:-decode prefill}"
runs="${RUNS:-3}"
jobs="${JOBS:-2}"
prompt="${PROMPT:-Once upon a time}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2 f32 f16 q8_0 q4_0 q4_k_m q4_k_m-k256)

# 1. llama-bench and llama-quantize, and the llama.cpp source (for convert_hf_to_gguf.py): found
# or built by llamacpp_build.sh, under .cache/ (or the main checkout's).
build_tool() { JOBS="$jobs" bash "$root/xtask/python/llamacpp_build.sh" "$1"; }
llama_bench="$(build_tool llama-bench)"
llama_quantize="$(build_tool llama-quantize)"
src="$(build_tool source)"

# 2. The 415M model's GGUF of type $1 (f32, f16, q8_0, q4_0, q4_k_m), made once; its path.
mistral_dir="$cache/bench-models"
mistral_gguf() {
  local type="$1" out="$mistral_dir/mistral-415m-$1.gguf" python="${PYTHON:-$root/.venv/bin/python}"
  case "$type" in f32 | f16 | q8_0 | q4_0 | q4_k_m) ;; *) echo "no such type: $type" >&2; return 1 ;; esac
  if [ ! -f "$out" ]; then
    if [ ! -x "$python" ]; then
      bash "$root/scripts/setup-python.sh" >&2
    fi
    if [ ! -f "$mistral_dir/hf/model.safetensors" ]; then
      echo "generating the 415M Mistral model (random weights)" >&2
      "$python" "$root/xtask/python/make_bench_mistral.py" --out "$mistral_dir/hf" >&2
    fi
    case "$type" in
      f32 | f16)
        echo "converting to $type with convert_hf_to_gguf.py" >&2
        "$python" "$src/convert_hf_to_gguf.py" "$mistral_dir/hf" --outtype "$type" \
          --outfile "$out.part" >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; return 1; }
        ;;
      *)
        echo "quantising to $type with llama-quantize" >&2
        "$llama_quantize" "$(mistral_gguf f32)" "$out.part" "${type^^}" >"$out.log" 2>&1 ||
          { tail -20 "$out.log" >&2; return 1; }
        ;;
    esac
    mv "$out.part" "$out"
  fi
  echo "$out"
}

# 3. The 201M model whose matrices are all multiples of 256 wide (make_bench_mistral.py --sizes
# k256): its Q4_K_M is K-quants throughout, as a real model's is. Made once; its path.
k256_gguf() {
  local out="$mistral_dir/mistral-201m-k256-q4_k_m.gguf" f32="$mistral_dir/mistral-201m-k256-f32.gguf"
  local python="${PYTHON:-$root/.venv/bin/python}"
  if [ ! -f "$out" ]; then
    [ -x "$python" ] || bash "$root/scripts/setup-python.sh" >&2
    if [ ! -f "$mistral_dir/hf-k256/model.safetensors" ]; then
      echo "generating the 201M Mistral model (random weights, sizes multiples of 256)" >&2
      "$python" "$root/xtask/python/make_bench_mistral.py" --sizes k256 --out "$mistral_dir/hf-k256" >&2
    fi
    if [ ! -f "$f32" ]; then
      "$python" "$src/convert_hf_to_gguf.py" "$mistral_dir/hf-k256" --outtype f32 --outfile "$f32.part" \
        >"$f32.log" 2>&1 || { tail -20 "$f32.log" >&2; return 1; }
      mv "$f32.part" "$f32"
    fi
    echo "quantising to Q4_K_M with llama-quantize" >&2
    "$llama_quantize" "$f32" "$out.part" Q4_K_M >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; return 1; }
    mv "$out.part" "$out"
  fi
  echo "$out"
}

model_path() {
  case "$1" in
    q4_k_m-k256) k256_gguf ;;
    smollm2)
      [ -f "$default_model" ] || { echo "no model at $default_model (run scripts/fetch-default-model.sh)" >&2; return 1; }
      echo "$default_model"
      ;;
    f32 | f16 | q8_0 | q4_0 | q4_k_m) mistral_gguf "$1" ;;
    *)
      [ -f "$1" ] || { echo "no model at $1" >&2; return 1; }
      echo "$1"
      ;;
  esac
}

# Make every file before measuring anything.
paths=()
for m in "${models[@]}"; do
  paths+=("$(model_path "$m")")
done

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
ratio() { python3 -c "print(f'{$2 / $1:.2f}')"; }
rss_file="$(mktemp)"
trap 'rm -f "$rss_file"' EXIT

# llama.cpp: one repetition per run; avg_ts of the one test in llama-bench's CSV output.
# $1 model, $2 threads, $3 prompt tokens, $4 generated tokens.
llama_run() {
  /usr/bin/time -f %M -o "$rss_file" "$llama_bench" -m "$1" -p "$3" -n "$4" -t "$2" -r 1 -o csv 2>/dev/null |
    python3 -c '
import csv, sys
print("%.1f" % float(list(csv.DictReader(sys.stdin))[-1]["avg_ts"]))'
}

# zoo decode: "decode N tok/s" of the stats line on stderr, e.g.
# [4 prompt tokens, 64 generated; prefill 40.9 tok/s, decode 12.4 tok/s; stopped: max_tokens]
zoo_decode() {
  local stats ts generated
  stats="$(/usr/bin/time -f %M -o "$rss_file" "$zoo" run --weights "$1" --prompt "$prompt" \
    --max-tokens "$tokens" --temperature 0 --threads "$2" 2>&1 >/dev/null |
    grep -o '\[[0-9]* prompt tokens.*\]' | tail -1)"
  ts="$(sed -n 's/.*decode \([0-9.]*\) tok\/s.*/\1/p' <<<"$stats")"
  [ -n "$ts" ] || { echo "no decode tok/s in zoo's output: $stats" >&2; return 1; }
  generated="$(sed -n 's/.* \([0-9]*\) generated.*/\1/p' <<<"$stats")"
  if [ "$generated" = "$tokens" ]; then echo "$ts"; else echo "${ts}(${generated}tok)"; fi
}

# zoo prefill: prefill tok/s of `zoo bench --json` (one measured run after one warm-up).
zoo_prefill() {
  "$zoo" bench --weights "$1" --threads "$2" --prompt-tokens "$prompt_tokens" --gen-tokens 1 \
    --warmup 1 --runs 1 --json 2>/dev/null |
    python3 -c 'import json, sys; print("%.1f" % json.load(sys.stdin)["prefill_tok_s_median"])'
}

mib() { echo $(($1 / 1024)); }
num() { sed 's/(.*//' <<<"$1"; } # a figure without its "(N tok)" flag

echo "zoo: $zoo" >&2
echo "llama.cpp: $llama_bench" >&2
echo "threads: $threads; decode: $tokens tokens; prefill: $prompt_tokens tokens; runs: $runs" \
  "(llama.cpp and zoo alternate); measuring: $measure" >&2
echo "load before: $(uptime)" >&2

rows=() raw=() mem=()
for idx in "${!models[@]}"; do
  name="${models[$idx]}" path="${paths[$idx]}"
  llama_rss="" zoo_rss=""
  for t in $threads; do
    ld=() zd=() lp=() zp=()
    for ((i = 1; i <= runs; i++)); do
      line="$name, threads $t, run $i:"
      if [[ " $measure " == *" decode "* ]]; then
        ld+=("$(llama_run "$path" "$t" 0 "$tokens")")
        llama_rss="$(cat "$rss_file")"
        zd+=("$(zoo_decode "$path" "$t")")
        zoo_rss="$(cat "$rss_file")"
        line+=" decode llama.cpp ${ld[-1]}, zoo ${zd[-1]};"
      fi
      if [[ " $measure " == *" prefill "* ]]; then
        lp+=("$(llama_run "$path" "$t" "$prompt_tokens" 0)")
        zp+=("$(zoo_prefill "$path" "$t")")
        line+=" prefill llama.cpp ${lp[-1]}, zoo ${zp[-1]}"
      fi
      echo "$line" >&2
    done
    row="| $name | $t |"
    if [ ${#ld[@]} -gt 0 ]; then
      zd_nums=()
      for x in "${zd[@]}"; do zd_nums+=("$(num "$x")"); done
      lm="$(median "${ld[@]}")" zm="$(median "${zd_nums[@]}")"
      row+=" $lm | $zm | $(ratio "$lm" "$zm") |"
    else
      row+=" | | |"
    fi
    if [ ${#lp[@]} -gt 0 ]; then
      lm="$(median "${lp[@]}")" zm="$(median "${zp[@]}")"
      row+=" $lm | $zm | $(ratio "$lm" "$zm") |"
    else
      row+=" | | |"
    fi
    rows+=("$row")
    raw+=("| $name | $t | ${ld[*]:-} | ${zd[*]:-} | ${lp[*]:-} | ${zp[*]:-} |")
  done
  if [ -n "$zoo_rss" ]; then
    mem+=("| $name | $(($(stat -c %s "$path") / 1048576)) | $(mib "$llama_rss") | $(mib "$zoo_rss") |")
  fi
done
echo "load after: $(uptime)" >&2

echo
echo "tok/s, median of $runs alternating runs; zoo/llama.cpp ratios; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| model | threads | llama.cpp decode tg$tokens | zoo decode $tokens | ratio | llama.cpp prefill pp$prompt_tokens | zoo prefill $prompt_tokens | ratio |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Raw runs (a zoo decode figure flagged (N tok) stopped at EOS after N tokens):"
echo
echo "| model | threads | llama.cpp decode | zoo decode | llama.cpp prefill | zoo prefill |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${raw[@]}"
if [ ${#mem[@]} -gt 0 ]; then
  echo
  echo "Peak RSS of the last decode run (/usr/bin/time max resident), MiB:"
  echo
  echo "| model | file MiB | llama-bench | zoo run |"
  echo "|---|---|---|---|"
  printf '%s\n' "${mem[@]}"
fi
