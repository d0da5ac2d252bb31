#!/usr/bin/env python3
"""Full-size parity on the GPU machine: a model with a real architecture's config and random
bf16 weights, run by transformers on the GPU and by zoo (CUDA backend, and optionally ndarray on
the CPU), compared on the logits after a prompt and on greedy tokens; zoo's decode speed too.

    python gpu_parity.py --zoo dist/cuda/zoo --config qwen2.5-14b --backend cuda --out $OUT

Weights are initialised at a trained model's scale (linear std 1/sqrt(fan_in), embeddings std 1,
norms 1) so that greedy decoding is not degenerate; they are written with `save_pretrained`
(sharded safetensors), which also exercises zoo's sharded loader. The tokenizer comes from the
matching fixture (real Qwen / Mistral vocabularies).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

CONFIGS = {
    "qwen2.5-14b": dict(
        model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=5120, intermediate_size=13824,
        num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, vocab_size=152064,
        rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False, max_position_embeddings=32768,
        use_sliding_window=False, sliding_window=131072, bos_token_id=151643, eos_token_id=151645,
    ),
    "mistral-7b": dict(
        model_type="mistral", architectures=["MistralForCausalLM"], hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=32768,
        sliding_window=4096, bos_token_id=1, eos_token_id=2,
    ),
}
TOKENIZER_FIXTURE = {"qwen2.5-14b": "qwen2-tiny", "mistral-7b": "mistral-tiny"}
PROMPT = "The history of the printing press begins"
NEW_TOKENS = 16


def build(name: str, model_dir: Path, fixtures: Path) -> None:
    """Writes a random-weight bf16 checkpoint of config `name` to `model_dir`."""
    cfg = dict(CONFIGS[name])
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in pname:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))
            elif p.dim() == 2:
                p.normal_(0.0, 1.0)
            elif "norm" in pname:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.1)
    model.save_pretrained(model_dir, max_shard_size="5GB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src = fixtures / TOKENIZER_FIXTURE[name] / f
        if src.exists():
            shutil.copy(src.resolve(), model_dir / f)
    del model
    torch.cuda.empty_cache()


def reference(model_dir: Path) -> dict:
    """transformers on the GPU in bf16: prompt ids, logits after the prompt, greedy tokens."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map="cuda")
    ids = tok(PROMPT, return_tensors="pt").input_ids.cuda()
    with torch.no_grad():
        logits = model(ids).logits[0, -1].float().cpu()
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=NEW_TOKENS)
        torch.cuda.synchronize()
        start = time.time()
        model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=NEW_TOKENS)
        torch.cuda.synchronize()
        hf_tok_s = NEW_TOKENS / (time.time() - start)
    top2 = torch.topk(logits, 2).values
    result = dict(prompt_tokens=ids[0].tolist(), logits=logits, tokens=out[0, ids.shape[1]:].tolist(),
                  margin=float(top2[0] - top2[1]), hf_eager_tok_s=hf_tok_s)
    del model
    torch.cuda.empty_cache()
    return result


def run_zoo(zoo: Path, model_dir: Path, backend: str, scratch: Path, max_tokens: int) -> dict:
    dump = scratch / f"logits-{backend}.json"
    cmd = [str(zoo), "run", "--weights", str(model_dir), "--backend", backend, "--prompt", PROMPT,
           "--max-tokens", str(max_tokens), "--temperature", "0", "--json", "--dump-logits", str(dump)]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return dict(error=proc.stderr.strip()[-2000:])
    report = json.loads(proc.stdout)
    report["logits"] = torch.tensor(json.loads(dump.read_text()))
    report["wall_s"] = time.time() - start
    return report


def compare(ref: dict, ours: dict) -> dict:
    if "error" in ours:
        return ours
    diff = (ours["logits"] - ref["logits"]).abs()
    same_prefix = 0
    for a, b in zip(ours["tokens"], ref["tokens"]):
        if a != b:
            break
        same_prefix += 1
    return dict(
        prompt_tokens_equal=ours["prompt_tokens"] == ref["prompt_tokens"],
        max_abs_logit_diff=float(diff.max()),
        logit_scale=float(ref["logits"].abs().max()),
        argmax_equal=int(ours["logits"].argmax()) == int(ref["logits"].argmax()),
        reference_top2_margin=ref["margin"],
        greedy_tokens_equal_prefix=same_prefix,
        greedy_tokens_total=len(ref["tokens"]),
        zoo_tokens=ours["tokens"], reference_tokens=ref["tokens"],
        zoo_decode_tok_s=ours["stats"]["decode_tok_s"], zoo_prefill_tok_s=ours["stats"]["prefill_tok_s"],
        zoo_wall_s=ours["wall_s"],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--config", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--backend", action="append", required=True, help="zoo backend(s) to compare")
    ap.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/zoo-gpu"))
    ap.add_argument("--cpu-tokens", type=int, default=4, help="new tokens for CPU backends")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    model_dir = args.scratch / args.config
    args.scratch.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "config.json").exists():
        t = time.time()
        build(args.config, model_dir, args.fixtures)
        print(f"built {model_dir} in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    ref = reference(model_dir)
    results = {"config": args.config, "prompt": PROMPT, "hf_eager_bf16_tok_s": ref["hf_eager_tok_s"]}
    for backend in args.backend:
        tokens = NEW_TOKENS if backend.startswith("cuda") or backend.startswith("candle-cuda") else args.cpu_tokens
        results[backend] = compare(ref, run_zoo(args.zoo, model_dir, backend, args.scratch, tokens))
        print(json.dumps({backend: results[backend]}), file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu-parity-{args.config}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
