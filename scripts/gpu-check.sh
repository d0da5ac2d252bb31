#!/usr/bin/env bash
# One-command GPU smoke test, run on the GPU machine from the repository root after
# scripts/build-cuda.sh built dist/cuda/zoo here and dist/ was carried over:
#   bash scripts/gpu-check.sh [OUT_DIR]
# Lists the backends, runs the fixtures through --backend cuda against their references, then
# full-size parity (Qwen2.5-14B and Mistral-7B configs, random bf16 weights) against
# transformers on the GPU, with zoo's decode tokens/s.
set -uo pipefail
out="${1:-${OUT:-/tmp/zoo-gpu-out}}"
mkdir -p "$out"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
zoo=dist/cuda/zoo
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$zoo list | tee "$out/list.txt"
for f in tests/fixtures/*/reference.json; do
  dir=$(dirname "$f")
  [ -f "$dir/config.json" ] || [ -n "$(ls "$dir"/*.pt 2>/dev/null)" ] || continue  # reference-only fixtures
  python3 - "$zoo" "$dir" <<'PY' | tee -a "$out/fixtures-cuda.txt"
import json, subprocess, sys
zoo, d = sys.argv[1], sys.argv[2]
ref = json.load(open(f"{d}/reference.json"))
for p in ref["prompts"]:
    r = subprocess.run([zoo, "run", "--weights", d, "--backend", "cuda", "--prompt", p["text"], "--max-tokens",
                        str(len(p["tokens"])), "--temperature", "0", "--json"], capture_output=True, text=True)
    if r.returncode:
        print(d, "ERROR", r.stderr.strip()[-300:]); continue
    got = json.loads(r.stdout)["tokens"]
    same = next((i for i, (a, b) in enumerate(zip(got, p["tokens"])) if a != b), len(got))
    print(f"{d}: {same}/{len(p['tokens'])} leading greedy tokens equal (bf16)")
PY
done
python3 xtask/python/gpu_parity.py --zoo $zoo --config qwen2.5-14b --backend cuda --out "$out" 2>&1 | tail -40
python3 xtask/python/gpu_parity.py --zoo $zoo --config mistral-7b --backend cuda --out "$out" 2>&1 | tail -40
