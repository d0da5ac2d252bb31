"""A 415M-parameter Mistral-architecture model with random weights, as a Hugging Face directory,
for speed comparisons against llama.cpp (xtask/python/llamacpp_bench.sh, issue 14).

Sizes are Qwen2.5-0.5B's (hidden 896, 24 layers, 14 query heads of 64 / 2 KV heads, MLP 4864)
with Mistral's 32000-token SentencePiece vocabulary and an untied output matrix: 415M parameters,
1.66 GB in f32. The weights are seeded normal(0, 0.02) draws (norm weights 1), so greedy output
is meaningless text; only speed and memory are measured with it.

The directory holds what llama.cpp's convert_hf_to_gguf.py reads:
  config.json              MistralForCausalLM
  model.safetensors        f32 weights, Hugging Face names
  tokenizer.model          Mistral's v1 SentencePiece model, from the PyPI package mistral-common
  tokenizer_config.json    LlamaTokenizer, <s> / </s> / <unk>, BOS added

With `--sizes k256` it writes instead a 201M model whose every matrix dimension is a multiple
of 256 (hidden 1024, 12 layers, 16 query heads of 64 / 4 KV heads, MLP 2816), so that
llama-quantize's Q4_K_M keeps every matrix in K-quants (Q4_K, Q6_K), as it does for real models;
the 415M model's 896-wide rows make it fall back to Q5_0 / Q8_0 for most of them.

Usage: python make_bench_mistral.py --out DIR [--seed N] [--std X] [--sizes default|k256]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN = 896
LAYERS = 24
HEADS = 14
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 4864
VOCAB = 32000
# Kept short so that zoo's KV cache (sized by the context length by default) stays small; the
# benchmarks use at most 192 positions.
CONTEXT = 4096


def config() -> dict:
    return {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "vocab_size": VOCAB,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }


def tokenizer_config() -> dict:
    def special(content: str) -> dict:
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False, "special": True}

    return {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "legacy": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": CONTEXT,
        "added_tokens_decoder": {"0": special("<unk>"), "1": special("<s>"), "2": special("</s>")},
    }


def mistral_tokenizer_model() -> Path:
    """Mistral's original 32000-token SentencePiece model (v1), shipped in mistral-common."""
    import mistral_common

    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise SystemExit(f"no {path.name} in {path.parent} (mistral-common's layout changed?)")
    return path


def weights(seed: int, std: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731
    tensors = {"model.embed_tokens.weight": normal(VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors |= {
            p + "self_attn.q_proj.weight": normal(HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.k_proj.weight": normal(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.v_proj.weight": normal(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.o_proj.weight": normal(HIDDEN, HEADS * HEAD_DIM),
            p + "mlp.gate_proj.weight": normal(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": normal(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": normal(HIDDEN, INTERMEDIATE),
            p + "input_layernorm.weight": ones(HIDDEN),
            p + "post_attention_layernorm.weight": ones(HIDDEN),
        }
    tensors["model.norm.weight"] = ones(HIDDEN)
    tensors["lm_head.weight"] = normal(VOCAB, HIDDEN)
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory to write (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--std", type=float, default=0.02)
    parser.add_argument("--sizes", choices=["default", "k256"], default="default")
    args = parser.parse_args()
    if args.sizes == "k256":
        global HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE
        HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 1024, 12, 16, 4, 64, 2816

    args.out.mkdir(parents=True, exist_ok=True)
    tensors = weights(args.seed, args.std)
    params = sum(t.size for t in tensors.values())
    save_file(tensors, str(args.out / "model.safetensors"), metadata={"format": "pt"})
    (args.out / "config.json").write_text(json.dumps(config(), indent=2) + "\n")
    (args.out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
    (args.out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "do_sample": False}, indent=2) + "\n")
    shutil.copyfile(mistral_tokenizer_model(), args.out / "tokenizer.model")
    print(f"{args.out}: {params / 1e6:.1f}M parameters (seed {args.seed}, std {args.std})")


if __name__ == "__main__":
    main()
