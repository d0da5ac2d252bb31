#!/usr/bin/env python3
"""Reference outputs for a GGUF model, computed by transformers' own GGUF loader.

    gguf_reference.py --gguf FILE.gguf --out tests/fixtures/smollm2/reference.json

transformers dequantises every tensor to float32 on load (`from_pretrained(dir, gguf_file=...,
quantization_config=GgufConfig(dequantize=True))`, which also un-permutes llama.cpp's Q/K
layout) and builds the tokenizer and chat template from the file's `tokenizer.*` metadata.
That is the reference for zoo's `--dtype f32` path: the same dequantised weights, the same
tokens.

Recorded, in the format of the fixtures' reference.json (see fixtures.py):
- a raw prompt ("The capital of France is") and a chat question rendered through
  `apply_chat_template(..., add_generation_prompt=True)` (its `text` is the rendered chat, which
  tokenizes to the same ids with special tokens matched whole), each with its prompt tokens, greedy
  tokens and text (stopping at EOS, as `generate` does), logits at a few positions
  (vocab ids start::step), and the float64 top-1 margin along the greedy path;
- the rendered chat text itself, to check zoo's template rendering byte for byte.

No weights are committed: the model comes from scripts/fetch-default-model.sh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import LOGIT_ID_START, LOGIT_ID_STEP, logit_positions, logit_values, min_margin_f64  # noqa: E402

RAW_PROMPT = "The capital of France is"
CHAT_QUESTION = "What is the capital of France?"
MAX_NEW_TOKENS = 32


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def reference_for(model32, model64, tokenizer, text: str, prompt: list[int], eos: list[int]) -> dict[str, Any]:
    input_ids = torch.tensor([prompt])
    prompt_logits = model32(input_ids).logits[0]
    out = model32.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos[0],
        output_logits=True,
        return_dict_in_generate=True,
    )
    generated = out.sequences[0, len(prompt) :].tolist()
    step_logits = [step[0] for step in out.logits]
    logits = []
    for position, source in logit_positions(len(prompt), len(generated)).items():
        row = prompt_logits[position] if source == "prompt" else step_logits[position - len(prompt) + 1]
        logits.append({"position": position, "values": logit_values(row)})
    return {
        "text": text,
        "prompt_tokens": prompt,
        "tokens": generated,
        "generated_text": tokenizer.decode(generated),  # special tokens kept, as in fixtures.py
        "min_margin_f64": min_margin_f64(model64, prompt, generated),
        "logits": logits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    gguf = args.gguf.resolve()
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model32, model64 = (
        AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            dtype=dtype,
            attn_implementation="eager",
            # Unpack every weight at load (never keep blocks for a matmul kernel): the reference
            # is the dequantised model.
            quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
            **kwargs,
        ).eval()
        for dtype in (torch.float32, torch.float64)
    )
    eos = [tokenizer.eos_token_id]

    messages = [{"role": "user", "content": CHAT_QUESTION}]
    chat_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    chat_ids = tokenizer(chat_text, add_special_tokens=False)["input_ids"]
    raw_ids = tokenizer(RAW_PROMPT)["input_ids"]

    reference = {
        "family": model32.config.model_type,
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__.split('+')[0]}",
        "gguf": {"file": gguf.name, "sha256": sha256(gguf)},
        "weights_dtype": "gguf (dequantised)",
        "compute_dtype": "float32",
        "eos_token_ids": eos,
        "logit_ids": {"start": LOGIT_ID_START, "step": LOGIT_ID_STEP},
        "chat": {"messages": messages, "add_generation_prompt": True, "rendered": chat_text},
        "prompts": [
            reference_for(model32, model64, tokenizer, RAW_PROMPT, raw_ids, eos),
            reference_for(model32, model64, tokenizer, chat_text, chat_ids, eos),
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    for p in reference["prompts"]:
        print(f"{p['text']!r} -> {p['generated_text']!r} (margin {p['min_margin_f64']:.3g})", file=sys.stderr)


if __name__ == "__main__":
    main()
