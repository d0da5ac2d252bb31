#!/usr/bin/env bash
# Creates the Python environment that xtask uses to make fixtures and run live parity checks
# against the reference implementations (torch CPU + transformers, from PyPI).
# Usage: scripts/setup-python.sh [VENV_DIR]   (default: .venv)
# Nothing here is needed to build zoo or run its tests: fixtures are committed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$root/scripts/requirements.txt"
echo "python environment ready: $venv" >&2
