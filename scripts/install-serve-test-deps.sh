#!/usr/bin/env bash
# Installs what the `zoo serve` client test needs (crates/cli/tests/openai_client.rs): the PyPI
# `openai` client, in its own virtual environment in zoo's cache ($ZOO_CACHE, else ~/.cache/zoo),
# so nothing is installed system-wide. Idempotent. Prints the environment's python on stdout.
set -euo pipefail

PACKAGE="openai==3.57.0"
cache="${ZOO_CACHE:-$HOME/.cache/zoo}"
venv="$cache/serve-test-venv"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import openai" 2>/dev/null; then
  echo "present: $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi
mkdir -p "$cache"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "$PACKAGE" >&2
echo "$venv/bin/python"
