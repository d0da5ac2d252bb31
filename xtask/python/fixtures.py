#!/usr/bin/env python3
"""Parity fixtures for zoo: tiny models with real tokenizers and reference outputs.

Two modes:

    fixtures.py generate --out tests/fixtures --assets .cache/assets [--only NAME ...]
        Builds every fixture in FIXTURES: initialises a tiny model at a trained model's scale,
        writes its weights, config and tokenizer files, then computes reference.json from the
        files just written (the same code path as `reference`). A seed is accepted only if the
        reference passes the quality checks (see `check_reference`); otherwise the next seed is
        tried, deterministically. Fixtures with a chat template also get chat_reference.json
        (chat_reference.py); `tokenizer-vectors` is llama.cpp's tokenizer test data
        (tokenizer_vectors.py); `hub-cache` is a Hugging Face hub cache holding `llama-linear`,
        laid out by huggingface_hub itself (hub_cache.py).

    fixtures.py reference --model-dir DIR --out FILE.json
        Recomputes the reference JSON from the weights already in DIR (used by
        `cargo xtask parity` for a live comparison).

Reference outputs are always computed in float32 from the stored weights (bf16/f16 weights are
upcast exactly): for Hugging Face families with transformers' own greedy `generate` and eager
attention (hf_families.py), for nanochat with nanochat_reference.py (nanochat_family.py). Every
generated token is re-checked in float64: the recorded `min_margin_f64` is the smallest gap
between the chosen token's logit and the best other logit, so a positive margin means the
float64 greedy path is the same path.

Adding a fixture means a `FixtureSpec` entry in FIXTURES; adding a model family, a `Family`
(fixture_types.py) in FAMILIES. Assets (tokenizer files) come from scripts/fetch-assets.sh.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import safe_open

import chat_reference
import hf_families
import hub_cache
import nanochat_family
import tokenizer_vectors
from fixture_types import PROMPTS, Family, Layout, Runner, TextCodec, dumps_json
from hf_families import GPT3_ENCODER, TokenizerFiles, copied_files

# ---------------------------------------------------------------------------------------------
# What every fixture is tested on
# ---------------------------------------------------------------------------------------------

MAX_NEW_TOKENS = 32
#: Logits are recorded at vocab ids LOGIT_ID_START, +step, ... (< vocab_size), where the step is
#: the first of LOGIT_ID_STEPS that records at most MAX_LOGITS_PER_ROW values.
LOGIT_ID_START = 0
LOGIT_ID_STEPS = (7, 97, 293)
MAX_LOGITS_PER_ROW = 600
#: Cached decode steps whose logits are recorded, besides the last one (see `logit_positions`).
DECODE_STEPS = (1, 8)

#: Quality bar for a reference path (fixtures.md): not degenerate, and far from any tie.
MIN_DISTINCT_TOKENS = 16
MIN_MARGIN_F64 = 1e-3
#: Seeds tried per fixture before giving up: spec.seed, spec.seed + 1, ...
MAX_SEED_TRIES = 64
#: Largest allowed difference between recorded logits (cached decode steps) and the same logits
#: from one full forward in float32: the rounding noise a correct f32 implementation may show.
#: Kept well below the Rust tests' tolerance (1e-4); it also catches a reference whose cached
#: decoding (e.g. with a sliding-window cache) disagrees with its own full forward.
MAX_DECODE_DRIFT = 5e-5

#: Families by config.json `model_type` (nanochat's own checkpoints have no config.json).
FAMILIES: dict[str, Family] = {
    "gpt2": hf_families.GPT2,
    "llama": hf_families.LLAMA,
    "qwen2": hf_families.QWEN2,
    "qwen3": hf_families.QWEN3,
    "mistral": hf_families.MISTRAL,
    "nanochat": nanochat_family.NANOCHAT,
}

# ---------------------------------------------------------------------------------------------
# Fixture table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixtureSpec:
    """One fixture directory under the output root."""

    name: str
    family: str
    #: Keyword arguments of the family's config class.
    config: dict[str, Any]
    #: Dtype the weights are stored in.
    dtype: torch.dtype
    #: File layout, see fixture_types.Layout.
    layout: Layout
    #: Writes the tokenizer files into the fixture directory (from the assets directory).
    tokenizer: TokenizerFiles
    #: First seed tried.
    seed: int
    #: Values written into config.json as is: what hub files have that transformers normalises
    #: away (e.g. Qwen2's `sliding_window` when `use_sliding_window` is false).
    config_overrides: dict[str, Any] = field(default_factory=dict)


GPT2_HUB_FILES = copied_files(
    {"vocab.json": f"{GPT3_ENCODER}/encoder.json", "merges.txt": f"{GPT3_ENCODER}/vocab.bpe"}
)
GPT2_OPENAI_FILES = copied_files(
    {"encoder.json": f"{GPT3_ENCODER}/encoder.json", "vocab.bpe": f"{GPT3_ENCODER}/vocab.bpe"}
)
#: Qwen2.5 values shared by both Qwen2 fixtures.
QWEN25 = dict(
    rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=32768, use_sliding_window=False,
    max_window_layers=28, bos_token_id=151643,
)
#: Mistral-7B-v0.1 values shared by both Mistral fixtures.
MISTRAL_V01 = dict(
    vocab_size=32000, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=32768,
    bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
)
#: Llama fixtures with RoPE scaling: Mistral-7B-v0.1's (Llama 2's) SentencePiece vocabulary, a
#: tied head, head_dim 16 (8 frequencies) and a short `original_max_position_embeddings`, so that
#: the scaling moves the angles of the positions a fixture reaches (prompt + 32 tokens).
LLAMA_SCALED = dict(
    vocab_size=32000, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
    hidden_size=16, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
    num_hidden_layers=2, intermediate_size=40,
)
NANOCHAT_TINY = dict(sequence_len=128, vocab_size=nanochat_family.TOKENIZER_SIZE, n_layer=2,
                     n_head=4, n_kv_head=2, n_embd=32)

FIXTURES: list[FixtureSpec] = [
    FixtureSpec(name="gpt2-tiny", family="gpt2", dtype=torch.float32, layout="hub", seed=1000,
                tokenizer=GPT2_HUB_FILES,
                config=dict(n_embd=16, n_head=4, n_layer=2, n_positions=128, vocab_size=50257)),
    FixtureSpec(name="gpt2-tiny-bf16", family="gpt2", dtype=torch.bfloat16, layout="save_pretrained", seed=2000,
                tokenizer=GPT2_OPENAI_FILES,
                config=dict(n_embd=24, n_head=3, n_layer=3, n_positions=128, vocab_size=50257)),
    # Qwen2.5-0.5B-like: tied head, padded vocab, one KV head; transformers 5 files.
    FixtureSpec(name="qwen2-tiny", family="qwen2", dtype=torch.bfloat16, layout="save_pretrained", seed=3000,
                tokenizer=hf_families.qwen25_tokenizer_files,
                config=dict(QWEN25, vocab_size=151936, hidden_size=16, num_attention_heads=4,
                            num_key_value_heads=1, num_hidden_layers=2, intermediate_size=40,
                            tie_word_embeddings=True, eos_token_id=151643),
                config_overrides={"sliding_window": 32768}),
    # Qwen2.5-Instruct-7B-like: untied head, unpadded (odd) vocab; 3 heads with an explicit
    # head_dim, so that heads x head_dim (12) != hidden (8); transformers 4.x files. (hidden 8
    # rather than 12 keeps the two [151665, hidden] f16 matrices at 4.9 MB instead of 7.3 MB.)
    FixtureSpec(name="qwen2-untied", family="qwen2", dtype=torch.float16, layout="hub", seed=4000,
                tokenizer=hf_families.qwen25_tokenizer_files,
                config=dict(QWEN25, vocab_size=151665, hidden_size=8, num_attention_heads=3, head_dim=4,
                            num_key_value_heads=1, num_hidden_layers=2, intermediate_size=32,
                            tie_word_embeddings=False, eos_token_id=151645),
                config_overrides={"sliding_window": 131072}),
    FixtureSpec(name="mistral-tiny", family="mistral", dtype=torch.float32, layout="save_pretrained", seed=5000,
                tokenizer=hf_families.mistral_tokenizer_files,
                config=dict(MISTRAL_V01, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                            num_hidden_layers=2, intermediate_size=48, sliding_window=None)),
    # Sliding window 8 < prompt + 32 generated tokens; explicit head_dim; transformers 4.x files.
    FixtureSpec(name="mistral-window", family="mistral", dtype=torch.bfloat16, layout="hub", seed=6000,
                tokenizer=hf_families.mistral_tokenizer_files,
                config=dict(MISTRAL_V01, hidden_size=18, num_attention_heads=3, num_key_value_heads=1,
                            head_dim=6, num_hidden_layers=2, intermediate_size=40, sliding_window=8)),
    # Llama 3.1's RoPE scaling (factor 8, low/high frequency factors 1 and 4) in 4.x files
    # (`rope_scaling`), with a pretraining context of 64 instead of 8192.
    FixtureSpec(name="llama3-rope", family="llama", dtype=torch.bfloat16, layout="hub", seed=8000,
                tokenizer=hf_families.mistral_tokenizer_files,
                config=dict(LLAMA_SCALED, max_position_embeddings=512,
                            rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                                 low_freq_factor=1.0, high_freq_factor=4.0,
                                                 original_max_position_embeddings=64))),
    # Linear position interpolation (factor 4), transformers 5 files (`rope_parameters`).
    FixtureSpec(name="llama-linear", family="llama", dtype=torch.bfloat16, layout="save_pretrained", seed=8100,
                tokenizer=hf_families.mistral_tokenizer_files,
                config=dict(LLAMA_SCALED, max_position_embeddings=2048,
                            rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=4.0))),
    # YaRN (factor 4 over a pretraining context of 64; attention factor 1 + 0.1 ln 4).
    FixtureSpec(name="llama-yarn", family="llama", dtype=torch.bfloat16, layout="save_pretrained", seed=8200,
                tokenizer=hf_families.mistral_tokenizer_files,
                config=dict(LLAMA_SCALED, max_position_embeddings=256,
                            rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                                 original_max_position_embeddings=64))),
    # Qwen3-0.6B-like: q/k RMSNorm per head, no q/k/v bias, head_dim (8) from the config rather
    # than hidden / heads (16 / 4); tied head; Qwen3's own tokenizer and chat template.
    FixtureSpec(name="qwen3-tiny", family="qwen3", dtype=torch.bfloat16, layout="save_pretrained", seed=9000,
                tokenizer=hf_families.qwen3_tokenizer_files,
                config=dict(vocab_size=151936, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                            head_dim=8, num_hidden_layers=2, intermediate_size=40, rope_theta=1e6,
                            rms_norm_eps=1e-6, max_position_embeddings=40960, tie_word_embeddings=True,
                            bos_token_id=151643, eos_token_id=151645, use_sliding_window=False,
                            max_window_layers=28)),
    FixtureSpec(name="nanochat-tiny", family="nanochat", dtype=torch.float32, layout="safetensors", seed=7000,
                tokenizer=nanochat_family.nanochat_tokenizer_files, config=NANOCHAT_TINY),
    # The same weights (same config and seed search) in nanochat's own checkpoint files.
    FixtureSpec(name="nanochat-pt", family="nanochat", dtype=torch.float32, layout="checkpoint", seed=7000,
                tokenizer=nanochat_family.nanochat_tokenizer_files, config=NANOCHAT_TINY),
]

#: GGUF conversions by llama.cpp's own converter (`convert_hf_to_gguf.py` from the
#: llama-cpp-python sdist): fixture → (directory, file). Each directory holds only the GGUF; the
#: tests compare it with the source fixture's reference. Llama 3 RoPE scaling becomes
#: `rope_freqs.weight` (per-frequency divisors) with no scaling metadata; Qwen3's q/k norms
#: become `attn_q_norm` / `attn_k_norm`, its tokenizer a GGUF BPE vocabulary.
GGUF_CONVERSIONS = {
    "llama3-rope": ("llama3-rope-gguf", "model.bf16.gguf"),
    "qwen3-tiny": ("qwen3-tiny-gguf", "model.bf16.gguf"),
}
LLAMA_CPP = "llama-cpp-python@0.3.36/vendor/llama.cpp"

#: PyTorch-format copies of a fixture, as transformers 4.x `save_pretrained(...,
#: safe_serialization=False)` wrote them (transformers 5 writes safetensors only): the state dict
#: by `torch.save`, as `pytorch_model.bin` (the tied head sharing the embedding's storage) or in
#: shards listed by `pytorch_model.bin.index.json` (without the tied head). fixture → [(directory, shards)]. The other files are links
#: to the source fixture's, `reference.json` included, so every parity test runs on them.
PT_COPIES = {"gpt2-tiny-bf16": [("gpt2-tiny-bf16-pt", 1), ("gpt2-tiny-bf16-pt-sharded", 2)]}

#: Not a model: llama.cpp's tokenizer test vectors (needs qwen2-tiny and mistral-tiny).
TOKENIZER_VECTORS = "tokenizer-vectors"

# ---------------------------------------------------------------------------------------------
# Writing a fixture directory
# ---------------------------------------------------------------------------------------------


def write_fixture_dir(model: Any, spec: FixtureSpec, assets: Path, out_dir: Path) -> None:
    """Replaces `out_dir` with the fixture's weights, config and tokenizer files."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    FAMILIES[spec.family].writers[spec.layout](model, spec, out_dir)
    spec.tokenizer(assets, out_dir)


# ---------------------------------------------------------------------------------------------
# Reference computation (shared by both modes)
# ---------------------------------------------------------------------------------------------


def family_of(model_dir: Path) -> tuple[str, Family]:
    """The family named by config.json's `model_type`; a nanochat checkpoint has none."""
    config = model_dir / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text())["model_type"]
    elif any(model_dir.glob("meta_*.json")):
        model_type = "nanochat"
    else:
        raise FileNotFoundError(f"{model_dir}: neither config.json nor meta_<step>.json")
    if model_type not in FAMILIES:
        raise ValueError(f"{model_dir}: no fixture family for model_type {model_type!r}")
    return model_type, FAMILIES[model_type]


def stored_weights_dtype(model_dir: Path) -> str:
    """The dtype of the stored weights ("float32", ...), or "float32 (bfloat16: NAME, ...)"
    when some tensors differ from the most common dtype."""
    dtypes: dict[str, str] = {}
    names = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(path, framework="pt") as f:
            dtypes |= {k: names[f.get_slice(k).get_dtype()] for k in f.keys()}
    for path in sorted(model_dir.glob("model_*.pt")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        dtypes |= {k: str(t.dtype).removeprefix("torch.") for k, t in state.items()}
    if not dtypes:
        raise FileNotFoundError(f"{model_dir}: no weights")
    counts = {d: list(dtypes.values()).count(d) for d in set(dtypes.values())}
    main = max(counts, key=counts.get)
    others = {}
    for name, dtype in dtypes.items():
        if dtype != main:
            others.setdefault(dtype, []).append(name)
    notes = "; ".join(f"{d}: {', '.join(sorted(n))}" for d, n in sorted(others.items()))
    return f"{main} ({notes})" if notes else main


def logit_id_step(vocab_size: int) -> int:
    return next(s for s in LOGIT_ID_STEPS if math.ceil(vocab_size / s) <= MAX_LOGITS_PER_ROW)


def min_margin_f64(run64: Runner, prompt: list[int], generated: list[int]) -> float:
    """Smallest float64 margin of the generated tokens (teacher-forced, one full forward):
    logit of the generated token minus the best other logit, over every generated position."""
    logits = run64.logits(prompt + generated)[len(prompt) - 1 : -1]  # row j predicts generated[j]
    chosen = logits[torch.arange(len(generated)), generated]
    others = logits.clone()
    others[torch.arange(len(generated)), generated] = -math.inf
    return (chosen - others.max(dim=-1).values).min().item()


def logit_positions(prompt_len: int, generated_len: int) -> dict[int, str]:
    """Recorded positions (absolute, in prompt + generated), each mapped to its source:

    - "prompt": 0, len//2, len-1, from a full forward over the prompt;
    - "decode": prompt_len-1+s for decode steps s in DECODE_STEPS and the last one. Decode step
      s (s >= 1) is the s-th forward through the KV cache, feeding generated token s (1-based)
      and producing the step-s logits; step 0 is the prefill (position len-1).
    """
    positions = {p: "prompt" for p in (0, prompt_len // 2, prompt_len - 1)}
    for step in (*DECODE_STEPS, generated_len - 1):
        if 1 <= step < generated_len:
            positions[prompt_len - 1 + step] = "decode"
    return dict(sorted(positions.items()))


def reference_for_prompt(
    run32: Runner, run64: Runner, tokenizer: TextCodec, text: str, step: int
) -> dict[str, Any]:
    """Greedy f32 generation for one prompt, with recorded logits and the f64 margin."""
    prompt = tokenizer.encode(text)
    prompt_logits = run32.logits(prompt)
    generated, step_logits = run32.generate(prompt, MAX_NEW_TOKENS)
    logits = []
    for position, source in logit_positions(len(prompt), len(generated)).items():
        if source == "prompt":
            row = prompt_logits[position]
        else:
            row = step_logits[position - len(prompt) + 1]
        logits.append({"position": position, "values": row[LOGIT_ID_START::step].tolist()})
    return {
        "text": text,
        "prompt_tokens": prompt,
        "tokens": generated,
        "generated_text": tokenizer.decode(generated),
        "min_margin_f64": min_margin_f64(run64, prompt, generated),
        "logits": logits,
    }


@torch.no_grad()
def compute_reference(model_dir: Path) -> dict[str, Any]:
    """reference.json contents for the model in `model_dir` (the format the Rust tests read)."""
    family_name, family = family_of(model_dir)
    tokenizer = family.load_tokenizer(model_dir)
    run32 = family.load_runner(model_dir, torch.float32)
    run64 = family.load_runner(model_dir, torch.float64)
    step = logit_id_step(run32.vocab_size)
    return {
        "family": family_name,
        "generator": family.generator(),
        "weights_dtype": stored_weights_dtype(model_dir),
        "compute_dtype": "float32",
        "logit_ids": {"start": LOGIT_ID_START, "step": step},
        "prompts": [reference_for_prompt(run32, run64, tokenizer, t, step) for t in PROMPTS],
    }


def decode_drift(run32: Runner, prompt: dict[str, Any], step: int) -> float:
    """Largest |recorded logit - the same logit from one full f32 forward| of a prompt."""
    full = run32.logits(prompt["prompt_tokens"] + prompt["tokens"])
    return max(
        (full[at["position"], LOGIT_ID_START::step] - torch.tensor(at["values"])).abs().max().item()
        for at in prompt["logits"]
    )


def check_reference(reference: dict[str, Any], model_dir: Path) -> list[str]:
    """Reasons the reference is not a useful fixture (empty if it is): a stop token produced
    (the path would be short), a token the tokenizer does not know (a padded vocab row), too few
    distinct tokens (degenerate), a margin near a tie, or too much float32 noise."""
    _, family = family_of(model_dir)
    run32 = family.load_runner(model_dir, torch.float32)
    stop = run32.eos_token_ids
    known = family.load_tokenizer(model_dir).vocab_size
    problems = []
    for prompt in reference["prompts"]:
        tokens, label = prompt["tokens"], repr(prompt["text"][:16])
        drift = decode_drift(run32, prompt, reference["logit_ids"]["step"])
        if drift > MAX_DECODE_DRIFT:
            problems.append(f"{label}: decode steps differ from a full forward by {drift:.2e}")
        if stop & set(tokens):
            problems.append(f"{label}: stop token {sorted(stop & set(tokens))}")
        if max(tokens) >= known:
            problems.append(f"{label}: token {max(tokens)} beyond the tokenizer's {known}")
        if len(set(tokens)) < MIN_DISTINCT_TOKENS:
            problems.append(f"{label}: only {len(set(tokens))} distinct tokens")
        if prompt["min_margin_f64"] < MIN_MARGIN_F64:
            problems.append(f"{label}: margin {prompt['min_margin_f64']:.2e}")
    return problems


def write_reference(reference: dict[str, Any], path: Path) -> None:
    """Writes reference.json (UTF-8, non-ASCII text kept as is)."""
    path.write_text(dumps_json(reference) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr)


def generate_fixture(spec: FixtureSpec, out_root: Path, assets: Path) -> dict[str, Any]:
    """Writes one fixture directory with its reference.json, trying seeds until it passes."""
    out_dir = out_root / spec.name
    family = FAMILIES[spec.family]
    for seed in range(spec.seed, spec.seed + MAX_SEED_TRIES):
        model = family.build(spec.config, torch.Generator().manual_seed(seed))
        write_fixture_dir(model, spec, assets, out_dir)
        reference = compute_reference(out_dir)
        problems = check_reference(reference, out_dir)
        if not problems:
            write_reference(reference, out_dir / "reference.json")
            margins = ", ".join(f"{p['min_margin_f64']:.3g}" for p in reference["prompts"])
            log(f"{spec.name}: seed {seed}, min margins (f64) {margins}")
            family.verify(out_dir)
            write_chat_files(spec, out_dir, assets)
            return reference
        log(f"{spec.name}: seed {seed} rejected: {'; '.join(problems)}")
    raise RuntimeError(f"{spec.name}: no acceptable seed in {MAX_SEED_TRIES} tries")


def convert_to_gguf(spec: FixtureSpec, out_root: Path, assets: Path) -> None:
    """Runs llama.cpp's converter on a fixture (bf16, as stored) into its GGUF_CONVERSIONS entry."""
    directory, file = GGUF_CONVERSIONS[spec.name]
    llama_cpp = hf_families.asset(assets, LLAMA_CPP)
    out_dir = out_root / directory
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(llama_cpp / "gguf-py")}
    subprocess.run(
        [sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(out_root / spec.name), "--outtype", "bf16",
         "--outfile", str(out_dir / file)],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    log(f"{directory}: {file} converted from {spec.name} by llama.cpp's convert_hf_to_gguf.py")


def write_pt_copies(spec: FixtureSpec, out_root: Path) -> None:
    """Writes the PT_COPIES of a fixture from its model as transformers loads it."""
    source = out_root / spec.name
    model = hf_families.AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
    # Each tensor in its own storage (as a model built in memory has them), tied ones sharing one.
    clones: dict[int, torch.Tensor] = {}
    state = {n: clones.setdefault(t.data_ptr(), t.clone()) for n, t in model.state_dict().items()}
    for directory, shards in PT_COPIES[spec.name]:
        out_dir = out_root / directory
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        for item in sorted(source.iterdir()):
            if item.name != "model.safetensors":
                (out_dir / item.name).symlink_to(Path("..") / spec.name / item.name)
        if shards == 1:
            torch.save(state, out_dir / "pytorch_model.bin")
        else:
            # A tied copy in another shard would store the storage twice: left out, as
            # transformers leaves out `_tied_weights_keys`.
            names = [n for n in state if n not in model._tied_weights_keys]
            per = -(-len(names) // shards)
            weight_map = {}
            for i in range(shards):
                file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
                part = {n: state[n] for n in names[i * per:(i + 1) * per]}
                torch.save(part, out_dir / file)
                weight_map.update({n: file for n in part})
            total = sum(t.numel() * t.element_size() for t in state.values())
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (out_dir / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n")
        log(f"{directory}: {spec.name} as PyTorch files ({shards} shard(s))")


def write_chat_files(spec: FixtureSpec, out_dir: Path, assets: Path) -> None:
    """chat_reference.json if the fixture has a chat template; for Mistral, also compares its
    tokenizer with SentencePiece/LlamaTokenizer and the template with mistral-common."""
    if spec.family == "mistral":
        for line in hf_families.compare_mistral_tokenizers(out_dir, assets, MISTRAL_PROBES):
            log(f"{spec.name}: tokenizers differ on {line}")
    if not chat_reference.has_chat_template(out_dir):
        return
    if spec.family == "llama":
        # NOTE: the Llama RoPE fixtures borrow Mistral's tokenizer files; transformers' Llama
        # tokenizer class encodes the text after a special token (`<s> [INST]`) without the
        # leading "▁" that tokenizer.json (and zoo) give, so their chat tokens are not a
        # reference. Chat is checked on mistral-tiny with the same files.
        return
    entries, notes = chat_reference.chat_reference(out_dir)
    for note in notes:
        log(f"{spec.name}: chat tokens differ: {note}")
    if spec.family == "mistral":
        spm = hf_families.asset(assets, hf_families.MISTRAL_V1_SPM)
        for note in chat_reference.compare_with_mistral_common(entries, spm):
            log(f"{spec.name}: chat tokens vs mistral-common: {note}")
    chat_reference.write_chat_reference(entries, out_dir / "chat_reference.json")


#: Prompts plus texts where Mistral tokenizers are known to disagree (leading spaces, literal
#: special tokens), for the comparison logged at generation time.
MISTRAL_PROBES = [*PROMPTS, "", " leading space", "  two spaces", "<s>x</s> [INST]"]


def check_same_reference(out_root: Path, names: tuple[str, str]) -> None:
    """Fixtures meant to hold the same weights must have the same reference prompts."""
    paths = [out_root / n / "reference.json" for n in names]
    if all(p.is_file() for p in paths):
        a, b = (json.loads(p.read_text(encoding="utf-8"))["prompts"] for p in paths)
        if a != b:
            raise AssertionError(f"{names[0]} and {names[1]} have different references")
        log(f"{names[0]} and {names[1]}: same reference")


def report_sizes(out_root: Path) -> None:
    result = subprocess.run(["du", "-shc", *sorted(map(str, out_root.iterdir()))],
                            capture_output=True, text=True, check=True)
    log(result.stdout.rstrip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    gen = modes.add_parser("generate", help="write all fixtures (weights, tokenizer, reference)")
    gen.add_argument("--out", type=Path, required=True, help="fixtures root, e.g. tests/fixtures")
    gen.add_argument("--assets", type=Path, required=True, help="from scripts/fetch-assets.sh")
    gen.add_argument("--only", action="append", metavar="NAME", help="only these fixtures")
    ref = modes.add_parser("reference", help="recompute reference JSON from a model directory")
    ref.add_argument("--model-dir", type=Path, required=True)
    ref.add_argument("--out", type=Path, required=True, help="reference JSON file to write")
    args = parser.parse_args(argv)

    torch.set_grad_enabled(False)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    if args.mode == "generate":
        names = [s.name for s in FIXTURES] + [TOKENIZER_VECTORS, hub_cache.OUT]
        unknown = set(args.only or []) - set(names)
        if unknown:
            parser.error(f"unknown fixtures: {sorted(unknown)}")
        selected = set(args.only or names)
        for spec in FIXTURES:
            if spec.name in selected:
                generate_fixture(spec, args.out, args.assets)
                if spec.name in GGUF_CONVERSIONS:
                    convert_to_gguf(spec, args.out, args.assets)
                if spec.name in PT_COPIES:
                    write_pt_copies(spec, args.out)
        if TOKENIZER_VECTORS in selected:
            tokenizer_vectors.write_vectors(args.out, args.assets)
        if hub_cache.OUT in selected:
            hub_cache.write_hub_cache(args.out)
        check_same_reference(args.out, ("nanochat-tiny", "nanochat-pt"))
        report_sizes(args.out)
    else:
        write_reference(compute_reference(args.model_dir), args.out)


if __name__ == "__main__":
    main()
