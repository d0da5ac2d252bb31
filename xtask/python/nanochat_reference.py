#!/usr/bin/env python3
"""Reference implementation of Karpathy's nanochat GPT, early version ("V0": karpathy/nanochat
nanochat/gpt.py @ 3a5e0bc, Oct 2025; see docs/specs/nanochat-gpt.md §1-3), for zoo's fixtures.

Differences from GPT-2:
- no position embeddings: RoPE on q and k (base 10000, half-split, rotation by -θ, i.e.
  y1 = x1·cos + x2·sin, y2 = -x1·sin + x2·cos: the opposite sign to HF's rotate_half);
- RMSNorm without weights, eps = float32 machine epsilon (F.rms_norm's eps=None), applied to the
  token embedding, before each sub-block, and before the head (no LayerNorm, no biases anywhere);
- QK-norm: q and k are RMS-normalised per head AFTER RoPE; attention scale 1/√head_dim;
- grouped-query attention: `n_kv_head` k/v heads, kv head j serves q heads j·g … j·g+g-1;
- MLP: c_proj(relu(c_fc(x))²) of width 4·n_embd;
- untied lm_head, then the logits softcap 15·tanh(logits/15).

Which softcap: exactly V0's `15 * tanh(logits / 15)` and nothing else. V0 has no clamp; the
"pre/post clamping at ±50" of the Rust port nanochat-rs (seed 001) is not nanochat's and is not
implemented here (with |logits| ≤ 15 after the softcap, a post-clamp at ±50 would be a no-op, but
a pre-clamp would change logits beyond ±50).

Numerics: everything is computed in the dtype the model is loaded in (float32 for references,
float64 for margins). nanochat itself ran under bf16 autocast with bf16 cos/sin and a bf16 wte;
here cos/sin are not rounded to bf16, and the fixtures' wte values are bf16-representable, so a
bf16 wte loads exactly.

Files: either `config.json` (nanochat's GPTConfig fields) + `model.safetensors`, or nanochat's
own checkpoint `model_<step>.pt` (a torch.save'd state dict, keys possibly prefixed `_orig_mod.`)
+ `meta_<step>.json` (`model_config` = GPTConfig fields); the newest step is used.

Usage: nanochat_reference.py MODEL_DIR "prompt" [N]   (greedy, with tokenizer.json in MODEL_DIR)
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

EPS = torch.finfo(torch.float32).eps  # F.rms_norm(x, (C,)) with eps=None, f32 opmath
ROPE_BASE = 10000.0
SOFTCAP = 15.0


@dataclass
class GPTConfig:
    sequence_len: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_kv_head: int
    n_embd: int


def norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dim."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + EPS)


def rotary(seq_len: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [seq_len, head_dim/2] in float32, as nanochat computes them (before its bf16
    cast)."""
    inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return freqs.cos(), freqs.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, heads, hd], cos/sin [T, 1, hd/2]: rotation of (x1, x2) pairs by -θ."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = config.n_embd // config.n_head
        self.c_q = nn.Linear(config.n_embd, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]  # x: [T, C]
        q = self.c_q(x).view(T, self.n_head, self.head_dim)  # [T, H, hd]
        k = self.c_k(x).view(T, self.n_kv_head, self.head_dim)  # [T, Hkv, hd]
        v = self.c_v(x).view(T, self.n_kv_head, self.head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # RoPE first ...
        q, k = norm(q), norm(k)  # ... then QK-norm
        group = self.n_head // self.n_kv_head  # each kv head repeated `group` times, contiguously
        k = k.repeat_interleave(group, dim=1)  # [T, H, hd]
        v = v.repeat_interleave(group, dim=1)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [H, T, hd]
        scores = q @ k.transpose(1, 2) / math.sqrt(self.head_dim)  # [H, T, T]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        y = scores.softmax(dim=-1) @ v  # [H, T, hd]
        return self.c_proj(y.transpose(0, 1).reshape(T, -1))  # heads side by side: [T, C]


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    """State-dict names are nanochat's: transformer.wte, transformer.h.{i}.attn.c_q, …,
    lm_head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.vocab_size, config.n_embd),
            "h": nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
        })
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [T] (positions 0..T-1) -> logits [T, vocab] after the softcap."""
        T = ids.shape[0]
        if T > 10 * self.config.sequence_len:  # nanochat's rotary cache size
            raise ValueError(f"sequence of {T} tokens exceeds 10 x sequence_len")
        cos, sin = rotary(T, self.config.n_embd // self.config.n_head)
        dtype = self.lm_head.weight.dtype
        cos, sin = cos.to(dtype)[:, None, :], sin.to(dtype)[:, None, :]  # [T, 1, hd/2]
        x = norm(self.transformer.wte(ids))  # [T, C]
        for block in self.transformer.h:
            x = block(x, cos, sin)
        logits = self.lm_head(norm(x))
        return SOFTCAP * torch.tanh(logits / SOFTCAP)


@torch.no_grad()
def generate_greedy(
    model: GPT, ids: list[int], max_new_tokens: int
) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy continuation, recomputing the whole sequence for every token (no KV cache).
    Returns the tokens and, per step, the logits row [vocab] the token was chosen from."""
    sequence, tokens, rows = list(ids), [], []
    for _ in range(max_new_tokens):
        row = model(torch.tensor(sequence))[-1]
        token = int(row.argmax())
        tokens.append(token)
        rows.append(row)
        sequence.append(token)
    return tokens, rows


def load(model_dir: Path, dtype: torch.dtype = torch.float32) -> GPT:
    """The model in `model_dir` (either file form), every tensor converted to `dtype`."""
    if (model_dir / "config.json").is_file():
        from safetensors.torch import load_file

        fields = json.loads((model_dir / "config.json").read_text())
        fields.pop("model_type", None)
        state = load_file(model_dir / "model.safetensors")
    else:
        steps = sorted(int(m.group(1)) for p in model_dir.glob("model_*.pt")
                       if (m := re.fullmatch(r"model_(\d+)\.pt", p.name)))
        if not steps:
            raise FileNotFoundError(f"{model_dir}: no config.json and no model_<step>.pt")
        meta = json.loads((model_dir / f"meta_{steps[-1]:06d}.json").read_text())
        fields = meta["model_config"]
        state = torch.load(model_dir / f"model_{steps[-1]:06d}.pt", map_location="cpu",
                           weights_only=True)
        state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    model = GPT(GPTConfig(**fields))
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
    return model.to(dtype).eval()


if __name__ == "__main__":
    from tokenizers import Tokenizer

    directory, prompt = Path(sys.argv[1]), sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    prompt_ids = tokenizer.encode(prompt).ids  # the post-processor prepends <|bos|>
    generated, _ = generate_greedy(load(directory), prompt_ids, count)
    print(json.dumps({"prompt_tokens": prompt_ids, "tokens": generated,
                      "text": tokenizer.decode(generated, skip_special_tokens=False)},
                     ensure_ascii=False))
