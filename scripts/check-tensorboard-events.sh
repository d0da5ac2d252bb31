#!/usr/bin/env bash
# Reads a `zoo train` run's TensorBoard event files with TensorBoard itself (PyPI tensorboard's
# EventAccumulator), in a virtual environment in zoo's cache ($ZOO_CACHE, else ~/.cache/zoo),
# so nothing is installed system-wide. Prints every scalar tag with its steps and last value,
# and exits non-zero when TensorBoard finds no loss/train scalars.
#   scripts/check-tensorboard-events.sh RUN_DIR
set -euo pipefail

run="${1:?usage: scripts/check-tensorboard-events.sh RUN_DIR}"
PACKAGE="tensorboard==2.21.0"
cache="${ZOO_CACHE:-$HOME/.cache/zoo}"
venv="$cache/tensorboard-venv"
python="${PYTHON:-python3}"

if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import tensorboard" 2>/dev/null; }; then
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet "$PACKAGE" >&2
fi
"$venv/bin/python" - "$run/train" <<'PY'
import sys
from tensorboard.backend.event_processing import event_accumulator

acc = event_accumulator.EventAccumulator(sys.argv[1], size_guidance={event_accumulator.SCALARS: 0})
acc.Reload()
tags = acc.Tags()["scalars"]
for tag in sorted(tags):
    events = acc.Scalars(tag)
    steps = [e.step for e in events]
    print(f"{tag}: {len(events)} values, steps {steps[0]}..{steps[-1]}, last {events[-1].value:.6g}")
if "loss/train" not in tags:
    sys.exit("TensorBoard found no loss/train scalars")
PY
