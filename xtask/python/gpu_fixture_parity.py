"""Fixture parity of zoo's GPU backends: every fixture through `zoo run --backend B`, against
its committed f32 reference (tests/fixtures/*/reference.json), with stated tolerances.

Per fixture, prompt and backend: zoo's logits after the prompt (`--dump-logits`, at the
reference's logit ids) against the reference's row for the last prompt position, and zoo's
greedy tokens against the reference's. Each backend computes at some precision:

- exact f32 (the CPU backends; `wgpu`, whose Vulkan shaders compute in f32; `candle-cuda` on a
  fixture with f32 weights, which it keeps): |Δlogit| ≤ 1e-4, the CPU tolerance, and every
  greedy token equal;
- reduced (`cuda`: bf16; `cuda-f16` and `wgpu-f16`: f16; `cuda-f32`: f32 storage but Burn's matmuls run on
  tensor cores in TF32, whose 10-bit mantissa is f16's; `candle-cuda` on bf16/f16 weights: that
  type): rounding moves logits by an amount that depends on the model, so the yardstick is
  transformers' own error at that precision on the same fixture (the same weights cast to it,
  run by the fixture's reference implementation, against the f32 reference). Over a fixture's
  prompts, zoo's largest |Δlogit| must be ≤ RATIO × transformers' largest. Greedy tokens are
  reported as the count of leading tokens equal: after the first near-tie, reduced-precision
  paths (transformers' own included, printed alongside) legitimately diverge.

Usage (GPU machine, repository root): python3 xtask/python/gpu_fixture_parity.py --zoo dist/cuda/zoo
    [--backend cuda-f32 --backend cuda ...] [--fixture NAME ...] [--prompts N] [--out DIR]
Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import hf_families  # noqa: E402
import nanochat_family  # noqa: E402

F32_TOLERANCE = 1e-4
#: zoo's half-precision error may be at most this many times transformers' on the same input.
RATIO = 4.0
#: Each backend's compute precision; None is exact f32, "stored" the fixture's weight dtype.
PRECISION = {"ndarray": None, "candle": None, "burn-ndarray": None, "cuda-f32": torch.float16,
             "cuda": torch.bfloat16, "cuda-f16": torch.float16, "candle-cuda": "stored",
             "wgpu": None, "wgpu-f16": torch.float16}
STORED = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def family_of(model_dir: Path):
    """The fixture's reference implementation (as fixtures.py picks it, without importing the
    fixture generator's extra dependencies)."""
    config = model_dir / "config.json"
    if not config.is_file():
        return nanochat_family.NANOCHAT
    families = {"gpt2": hf_families.GPT2, "llama": hf_families.LLAMA, "qwen2": hf_families.QWEN2,
                "qwen3": hf_families.QWEN3, "mistral": hf_families.MISTRAL, "nanochat": nanochat_family.NANOCHAT}
    return families[json.loads(config.read_text())["model_type"]]


def fixture_dirs(root: Path) -> list[Path]:
    """Fixtures with weights zoo can load by directory (reference-only ones are skipped)."""
    return [d for d in sorted(root.iterdir())
            if (d / "reference.json").is_file() and ((d / "config.json").is_file() or any(d.glob("*.pt")))]


def reference_row(prompt: dict) -> list[float]:
    """The reference's logits (at the recorded ids) for the last prompt position."""
    last = len(prompt["prompt_tokens"]) - 1
    return next(row["values"] for row in prompt["logits"] if row["position"] == last)


def transformers_error(model_dir: Path, reference: dict, dtype: torch.dtype) -> list[tuple[float, int]]:
    """Per prompt: (max |Δlogit| of the reference implementation in `dtype` vs f32, greedy
    tokens equal before the first difference)."""
    runner = family_of(model_dir).load_runner(model_dir, dtype)
    ids = reference["logit_ids"]
    out = []
    with torch.no_grad():
        for prompt in reference["prompts"]:
            row = runner.logits(prompt["prompt_tokens"])[-1].float()[ids["start"]::ids["step"]]
            err = (row - torch.tensor(reference_row(prompt))).abs().max().item()
            tokens, _ = runner.generate(prompt["prompt_tokens"], len(prompt["tokens"]))
            out.append((err, leading_equal(tokens, prompt["tokens"])))
    return out


def leading_equal(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def run_zoo(zoo: Path, model_dir: Path, backend: str, prompt: dict, scratch: Path) -> dict:
    dump = scratch / "logits.json"
    cmd = [str(zoo), "run", "--weights", str(model_dir), "--backend", backend, "--prompt", prompt["text"],
           "--max-tokens", str(len(prompt["tokens"])), "--temperature", "0", "--json", "--dump-logits", str(dump)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:]}
    report = json.loads(proc.stdout)
    report["logits"] = json.loads(dump.read_text())
    return report


def precision(backend: str, reference: dict):
    p = PRECISION[backend]
    if p != "stored":
        return p
    # "float32 (bfloat16: wte)": candle-cuda computes in the embedding's 16-bit type.
    stored = reference["weights_dtype"]
    half = next((t for t in ("bfloat16", "float16") if f"({t}" in stored), None)
    return STORED[half or stored.split()[0]]


def check(zoo: Path, model_dir: Path, backends: list[str], prompts: int, scratch: Path) -> list[dict]:
    reference = json.loads((model_dir / "reference.json").read_text())
    reference["prompts"] = reference["prompts"][:prompts]
    ids = reference["logit_ids"]
    dtypes = {precision(b, reference) for b in backends} - {None}
    hf = {dtype: transformers_error(model_dir, reference, dtype) for dtype in dtypes}
    rows = []
    for backend in backends:
        dtype = precision(backend, reference)
        for i, prompt in enumerate(reference["prompts"]):
            row = {"fixture": model_dir.name, "backend": backend, "prompt": i,
                   "precision": str(dtype).removeprefix("torch.") if dtype else "float32"}
            ours = run_zoo(zoo, model_dir, backend, prompt, scratch)
            if "error" in ours:
                rows.append(row | {"ok": False, "error": ours["error"]})
                print_row(rows[-1])
                continue
            got = torch.tensor(ours["logits"])[ids["start"]::ids["step"]]
            err = (got - torch.tensor(reference_row(prompt))).abs().max().item()
            same = leading_equal(ours["tokens"], prompt["tokens"])
            row |= {"max_abs_logit_diff": err, "greedy_equal": same, "greedy_total": len(prompt["tokens"]),
                    "prompt_tokens_equal": ours["prompt_tokens"] == prompt["prompt_tokens"]}
            if dtype is None:
                row["tolerance"] = F32_TOLERANCE
                row["ok"] = err <= F32_TOLERANCE and same == len(prompt["tokens"])
            else:
                hf_err, hf_same = hf[dtype][i]
                worst_hf = max(e for e, _ in hf[dtype])
                row |= {"transformers_error": hf_err, "transformers_greedy_equal": hf_same,
                        "tolerance": RATIO * worst_hf}
                row["ok"] = err <= RATIO * worst_hf
            row["ok"] = row["ok"] and row["prompt_tokens_equal"]
            rows.append(row)
            print_row(row)
    return rows


def print_row(r: dict) -> None:
    if "error" in r:
        print(f"{r['fixture']:<16} {r['backend']:<12} p{r['prompt']}  ERROR {r['error']}", flush=True)
        return
    hf = f"  transformers {r['transformers_error']:.2e} ({r['transformers_greedy_equal']}/{r['greedy_total']})" \
        if "transformers_error" in r else ""
    print(f"{r['fixture']:<16} {r['backend']:<12} {r['precision']:<9} p{r['prompt']}  |Δlogit| {r['max_abs_logit_diff']:.2e} "
          f"≤ {r['tolerance']:.2e}  greedy {r['greedy_equal']}/{r['greedy_total']}{hf}  "
          f"{'ok' if r['ok'] else 'FAIL'}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--backend", action="append", choices=sorted(PRECISION))
    ap.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    ap.add_argument("--fixture", action="append", help="only these fixtures (default: all with weights)")
    ap.add_argument("--prompts", type=int, default=3, help="the first N prompts of each fixture")
    ap.add_argument("--out", type=Path, help="write every row as JSON to OUT/fixture-parity.json")
    args = ap.parse_args()
    backends = args.backend or ["cuda-f32", "cuda", "cuda-f16", "candle-cuda"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model_dir in fixture_dirs(args.fixtures):
            if args.fixture is None or model_dir.name in args.fixture:
                rows += check(args.zoo, model_dir, backends, args.prompts, Path(scratch))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fixture-parity.json").write_text(json.dumps(rows, indent=1))
    failed = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(failed)}/{len(rows)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
