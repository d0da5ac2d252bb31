#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer test data: the vocabulary-only GGUFs `ggml-vocab-*.gguf` (no
# weights: llama-spm, phi-3, llama-bpe, qwen2, gpt-2, ...) and their `.inp`/`.out` test vectors
# (input strings, expected token ids), from the one registry package that ships them: PyPI's
# llama-cpp-python==0.3.36 source distribution (`pip download --no-deps`, 77 MB; only
# vendor/llama.cpp/models/ggml-vocab-* is unpacked, 75 MB). tests/tests/gguf_vocabs.rs reads them.
# Idempotent and cached: a complete folder is kept.
# Usage: scripts/fetch-llama-vocabs.sh        (cache: $ZOO_CACHE, else ~/.cache/zoo)
# Prints the folder on stdout.
set -euo pipefail
# shellcheck source=scripts/fetch-common.sh
. "$(dirname "$0")/fetch-common.sh"

PACKAGE="llama-cpp-python==0.3.36"
TOP="llama_cpp_python-0.3.36"
SHA256_PREFIX="832db0699007f1be"
MEMBERS="$TOP/vendor/llama.cpp/models/ggml-vocab-*"

dest="$cache/llama-vocabs/llama-cpp-python-0.3.36"

if [ -f "$dest/ggml-vocab-llama-spm.gguf" ]; then
  present "$dest"
fi

echo "fetching the $PACKAGE sdist from PyPI" >&2
# `--no-binary NAME`: the source tarball (pip prepares its metadata, no build).
pip_download --no-binary llama-cpp-python "$PACKAGE"
tarball="$tmp/$TOP.tar.gz"
sum="$(sha256sum "$tarball" | cut -c1-${#SHA256_PREFIX})"
if [ "$sum" != "$SHA256_PREFIX" ]; then
  echo "error: $tarball: sha256 $sum… is not $SHA256_PREFIX…" >&2
  exit 1
fi
mkdir -p "$tmp/out"
tar -xzf "$tarball" -C "$tmp/out" --strip-components=4 --wildcards "$MEMBERS"
publish "$tmp/out" "$dest"
echo "fetched: $dest ($(ls "$dest" | wc -l) files)" >&2
echo "$dest"
