#!/usr/bin/env bash
# A/B decode benchmark on the GPU machine (no cargo there): zoo builds and/or settings side by
# side on the random-weight checkpoints of real configs, alternating, each in the same call.
#
#   bash scripts/gpu-ab.sh [--models "qwen2.5-0.5b mistral-7b qwen2.5-14b"] [--rounds 2] \
#       [--out DIR] VARIANT...
#
# A VARIANT is a zoo binary followed by environment settings, as one word each for the shell:
#   "dist/cuda/zoo"  "dist/cuda/zoo ZOO_ATTENTION_EARLY=0"  "/tmp/zoo-previous"
# For each model: its checkpoint is written (xtask/python/gpu_parity.py's `build`: bf16, real
# sizes, random values, the tokenizer of the matching fixture under tests/fixtures), every
# variant runs once untimed (kernels compile, the page cache fills), then each round runs every
# variant in turn: `zoo bench --backend cuda --prompt-tokens 128 --gen-tokens 64 --runs 3` with
# ZOO_CUDA_GRAPH_TIMES=1, printing its decode figures and the GPU time per replayed step. Logs go
# to --out (default /tmp/zoo-ab); each checkpoint is deleted after its model's runs.
set -euo pipefail
models="qwen2.5-0.5b mistral-7b qwen2.5-14b"
rounds=2
out=/tmp/zoo-ab
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "gpu-ab: unknown option $1; --help" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "gpu-ab: name at least one variant (a zoo binary and settings); --help" >&2; exit 2; }
for variant in "$@"; do
  read -r -a words <<< "$variant"
  [ -x "${words[0]:-}" ] || { echo "gpu-ab: '${words[0]:-}' (variant '$variant') is not an executable zoo" >&2; exit 2; }
done
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
mkdir -p "$out"
work=/tmp/zoo-ab-models

run_variant() { # model_dir variant log -- the variant's binary and settings, then zoo's arguments
  local dir=$1 variant=$2 log=$3; shift 3
  read -r -a words <<< "$variant"
  env "${words[@]:1}" ZOO_CUDA_GRAPH_TIMES=1 "${words[0]}" bench --weights "$dir" --backend cuda "$@" \
    > "$log.out" 2> "$log"
}

for model in $models; do
  dir="$work/$model"
  rm -rf "$dir"
  python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'xtask/python'); import gpu_bench, gpu_parity; \
gpu_parity.build('$model', Path('$dir'), Path('tests/fixtures'))" > "$out/build-$model.log" 2>&1
  for variant in "$@"; do
    run_variant "$dir" "$variant" "$out/warm.log" --prompt-tokens 16 --gen-tokens 4 --runs 1 || true
  done
  for round in $(seq "$rounds"); do
    i=0
    for variant in "$@"; do
      i=$((i + 1))
      log="$out/$model-r$round-v$i.log"
      echo "== $model, round $round: $variant"
      if run_variant "$dir" "$variant" "$log" --prompt-tokens 128 --gen-tokens 64 --runs 3; then
        grep -h "^decode" "$log.out" | tail -1
        grep -h "GPU .* per step" "$log" | tail -1
      else
        echo "failed: $(tail -1 "$log")"
      fi
    done
  done
  rm -rf "$dir"
done
