#!/usr/bin/env python3
"""The GPU benchmark: zoo's GPU backends against transformers eager on the same shapes.

    python3 xtask/python/gpu_bench.py --zoo dist/cuda/zoo --out $OUT [--models qwen2.5-0.5b,mistral-7b,qwen2.5-14b]
        [--backend cuda --backend candle-cuda] [--prompt-tokens 128] [--gen-tokens 64] [--no-transformers]

For each model config (real sizes, random bf16 weights written by gpu_parity.build): `zoo bench
--json` per backend, then transformers (bf16, eager attention, its default dynamic cache) timing a
prefill of the same token count and greedy decode of the same number of tokens, EOS ignored. The
device-to-device copy bandwidth is measured first; roofline = weight bytes / that bandwidth.
Prints a Markdown table and writes bench.json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import gpu_parity  # noqa: E402

gpu_parity.CONFIGS["qwen2.5-0.5b"] = dict(
    model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=896, intermediate_size=4864,
    num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
    rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True, max_position_embeddings=32768,
    use_sliding_window=False, sliding_window=32768, bos_token_id=151643, eos_token_id=151645,
)
gpu_parity.TOKENIZER_FIXTURE["qwen2.5-0.5b"] = "qwen2-tiny"


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read + written per second (median of 20 copies of 2 GiB)."""
    src = torch.empty(1 << 30, dtype=torch.float16, device="cuda").normal_()
    dst = torch.empty_like(src)
    times = []
    for _ in range(23):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    del src, dst
    torch.cuda.empty_cache()
    times = sorted(times[3:])
    return 2 * (1 << 31) / times[len(times) // 2]


def weight_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))


def kv_bytes(model_dir: Path) -> int:
    """Bytes of a bf16 KV cache holding the model's whole context (what `cuda` allocates)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    kv_heads = cfg.get("num_key_value_heads") or heads
    return 2 * cfg["num_hidden_layers"] * kv_heads * head_dim * cfg["max_position_embeddings"] * 2


def run_sampled(cmd: list[str], env=None) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs `cmd`, sampling every 0.2 s the GPU memory in use and the process's anonymous
    (non-file-backed) resident memory; returns the process and those peaks in MiB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peaks = {"peak_gpu_mib": 0, "peak_host_anon_mib": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                smi = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True).stdout.split()
                peaks["peak_gpu_mib"] = max(peaks["peak_gpu_mib"], int(smi[0]))
                status = Path(f"/proc/{proc.pid}/status").read_text()
                anon = int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) // 1024
                peaks["peak_host_anon_mib"] = max(peaks["peak_host_anon_mib"], anon)
            except Exception:
                pass
            stop.wait(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), peaks


def zoo_bench(zoo: str, model_dir: Path, backend: str, args, out: Path) -> dict:
    cmd = [zoo, "bench", "--weights", str(model_dir), "--backend", backend, "--json",
           "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens),
           "--runs", str(args.runs), "--warmup", "1"]
    started = time.time()
    proc, peaks = run_sampled(cmd)
    (out / f"zoo-{model_dir.name}-{backend}.log").write_text(proc.stderr)
    if proc.returncode != 0:
        print(f"zoo bench {backend} failed: {proc.stderr.strip()[-600:]}", file=sys.stderr)
        return {"error": proc.stderr.strip()[-300:]}
    report = json.loads(proc.stdout)
    report["wall_s"] = time.time() - started
    report.update(peaks)
    return report


def stderr_rates(text: str) -> dict:
    """The `[... prefill X tok/s, decode Y tok/s ...]` line `zoo run` prints."""
    m = re.search(r"prefill ([\d.]+) tok/s, decode ([\d.]+) tok/s", text)
    return {"prefill_tok_s": float(m.group(1)), "decode_tok_s": float(m.group(2))} if m else {}


def extras(zoo: str, model_dir: Path, backend: str, args, short_decode: float, out: Path) -> dict:
    """Long-context decode, an 8-prompt batch against one prompt, and a cold vs warm start."""
    result = {}
    long = zoo_bench(zoo, model_dir, backend, argparse.Namespace(
        prompt_tokens=args.long_context, gen_tokens=32, runs=1), out)
    if "decode_tok_s_median" in long:
        result["long_context"] = {"context": args.long_context, "decode_tok_s": long["decode_tok_s_median"],
                                  "prefill_tok_s": long["prefill_tok_s_median"],
                                  "ratio_to_short": long["decode_tok_s_median"] / short_decode}
    prompts = out / "prompts.txt"
    prompts.write_text("".join(f"Story number {i}: once upon a time in a land far away\n" for i in range(8)))
    runs = {}
    for label, extra in (("one", ["--prompt", "Story number 0: once upon a time in a land far away"]),
                         ("batch8", ["--prompts-file", str(prompts)])):
        command = [zoo, "run", "--weights", str(model_dir), "--backend", backend, "--temperature", "0", *extra]
        # A short uncounted run first: the batch's kernels are compiled at their first launch
        # on a machine (an 8-prompt run on a fresh kernel cache measured 416 tok/s, then 1 287).
        subprocess.run([*command, "--max-tokens", "4"], capture_output=True, text=True)
        proc = subprocess.run([*command, "--max-tokens", "64"], capture_output=True, text=True)
        runs[label] = stderr_rates(proc.stderr) or {"error": proc.stderr.strip()[-300:]}
    one, batch = runs["one"].get("decode_tok_s"), runs["batch8"].get("decode_tok_s")
    result["batch"] = {**runs, "ratio": batch / one if one and batch else None}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "ZOO_CACHE": cache}
        walls = []
        for _ in range(2):
            t0 = time.time()
            subprocess.run([zoo, "run", "--weights", str(model_dir), "--backend", backend, "--max-tokens", "8",
                            "--prompt", "Hello"], capture_output=True, text=True, env=env)
            walls.append(time.time() - t0)
        result["start"] = {"cold_wall_s": walls[0], "warm_wall_s": walls[1],
                           "kernel_cache_files": sum(1 for _ in Path(cache).rglob("*") if _.is_file())}
    return result


def transformers_bench(model_dir: Path, args) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16, device_map="cuda", attn_implementation="eager")
    ids = torch.randint(100, 20000, (1, args.prompt_tokens), device="cuda")
    prefill, decode = [], []
    with torch.no_grad():
        for run in range(args.runs + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(ids, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            for _ in range(args.gen_tokens - 1):
                out = model(nxt, past_key_values=past, use_cache=True)
                past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            nxt.item()
            t2 = time.perf_counter()
            if run > 0:
                prefill.append(args.prompt_tokens / (t1 - t0))
                decode.append((args.gen_tokens - 1) / (t2 - t1))
    del model
    torch.cuda.empty_cache()
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {"prefill_tok_s_median": med(prefill), "decode_tok_s_median": med(decode)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", default="dist/cuda/zoo")
    ap.add_argument("--out", type=Path, default=Path("/tmp/zoo-bench"))
    ap.add_argument("--models", default="qwen2.5-0.5b,mistral-7b,qwen2.5-14b")
    ap.add_argument("--backend", action="append", default=None)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-transformers", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("/tmp/zoo-bench-models"))
    ap.add_argument("--extras", default="", help="models (comma-separated) that also get the long-context, "
                    "batch and cold-start runs")
    ap.add_argument("--long-context", type=int, default=8192)
    ap.add_argument("--baseline", help="a second zoo binary (an earlier build) run after --zoo on every "
                    "backend, so a change is measured against the build before it on the same machine")
    ap.add_argument("--long-prefill", type=int, default=0,
                    help="also time a prefill of this many tokens (zoo and transformers, 4 decoded tokens)")
    args = ap.parse_args()
    backends = args.backend or ["cuda"]
    args.out.mkdir(parents=True, exist_ok=True)
    fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"

    bandwidth = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}: copy bandwidth {bandwidth / 1e12:.2f} TB/s", flush=True)
    results = {"gpu": torch.cuda.get_device_name(), "copy_bandwidth": bandwidth, "models": {}}
    for name in args.models.split(","):
        model_dir = args.work / name
        shutil.rmtree(model_dir, ignore_errors=True)
        t0 = time.time()
        gpu_parity.build(name, model_dir, fixtures)
        size = weight_bytes(model_dir)
        print(f"{name}: wrote {size / 1e9:.1f} GB in {time.time() - t0:.0f} s", flush=True)
        row = {"weight_bytes": size, "kv_bytes": kv_bytes(model_dir), "roofline_tok_s": bandwidth / size}
        for b in backends:
            row[b] = zoo_bench(args.zoo, model_dir, b, args, args.out)
            print(f"  {b}: {json.dumps(row[b])[:400]}", flush=True)
            if args.baseline:
                row[f"{b} (baseline)"] = zoo_bench(args.baseline, model_dir, b, args, args.out)
                print(f"  {b} (baseline build): {json.dumps(row[f'{b} (baseline)'])[:400]}", flush=True)
            if args.long_prefill:
                long = argparse.Namespace(prompt_tokens=args.long_prefill, gen_tokens=4, runs=1)
                row[b]["long_prefill"] = zoo_bench(args.zoo, model_dir, b, long, args.out).get("prefill_tok_s_median")
                print(f"  {b} prefill of {args.long_prefill}: {row[b]['long_prefill']}", flush=True)
            if name in args.extras.split(",") and "decode_tok_s_median" in row[b]:
                row[b]["extras"] = extras(args.zoo, model_dir, b, args, row[b]["decode_tok_s_median"], args.out)
                print(f"  {b} extras: {json.dumps(row[b]['extras'])}", flush=True)
        if not args.no_transformers:
            row["transformers"] = transformers_bench(model_dir, args)
            if args.long_prefill:
                long = argparse.Namespace(prompt_tokens=args.long_prefill, gen_tokens=4, runs=1)
                row["transformers"]["long_prefill"] = transformers_bench(model_dir, long)["prefill_tok_s_median"]
            print(f"  transformers eager: {row['transformers']}", flush=True)
        results["models"][name] = row
        shutil.rmtree(model_dir, ignore_errors=True)
        (args.out / "bench.json").write_text(json.dumps(results, indent=2))

    peers = backends + ([f"{b} (baseline)" for b in backends] if args.baseline else [])
    peers += [] if args.no_transformers else ["transformers"]
    print(f"\n| model (bf16) | roofline tok/s | " + " | ".join(f"{p} decode (% roofline) | {p} prefill" for p in peers) + " |")
    print("|---|---|" + "---|---|" * len(peers))
    for name, row in results["models"].items():
        cells = []
        for p in peers:
            r = row.get(p, {})
            d, f = r.get("decode_tok_s_median"), r.get("prefill_tok_s_median")
            cells.append(f"{d:.1f} ({100 * d / row['roofline_tok_s']:.0f}%)" if d else "failed")
            cells.append(f"{f:.0f}" if f else "-")
        print(f"| {name} | {row['roofline_tok_s']:.0f} | " + " | ".join(cells) + " |")
    mib = 1 << 20
    print("\n| model | weights MiB | KV cache (full context) MiB | limit: +10% | " + " | ".join(f"{b} peak GPU MiB" for b in backends) + " |")
    print("|---|---|---|---|" + "---|" * len(backends))
    for name, row in results["models"].items():
        w, kv = row["weight_bytes"] / mib, row["kv_bytes"] / mib
        peaks = " | ".join(str(row.get(b, {}).get("peak_gpu_mib", "-")) for b in backends)
        print(f"| {name} | {w:.0f} | {kv:.0f} | {1.1 * (w + kv):.0f} | {peaks} |")
    print("\n| model | " + " | ".join(f"{b} kernel launches per decode step" for b in backends) + " |")
    print("|---|" + "---|" * len(backends))
    for name, row in results["models"].items():
        counts = " | ".join(str(row.get(b, {}).get("launches_per_step") or "-") for b in backends)
        print(f"| {name} | {counts} |")
    if args.long_prefill:
        print(f"\n| model | " + " | ".join(f"{p} prefill of {args.long_prefill} tok/s" for p in peers) + " |")
        print("|---|" + "---|" * len(peers))
        for name, row in results["models"].items():
            cells = [f"{v:.0f}" if (v := row.get(p, {}).get("long_prefill")) else "-" for p in peers]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
