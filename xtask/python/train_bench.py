#!/usr/bin/env python3
"""PyTorch eager peer of `zoo train --model nanochat`: the same model, data, batch, optimizer and
schedule, for a tokens/s and model-FLOPs-utilisation comparison in the same run (docs/train.md).

It trains from a zoo run directory (written by `zoo train`, so the tokenizer, the token files and
config.json are the ones zoo trained on):

- model: nanochat's GPT as `nanochat_reference.py` defines it (RMSNorm without weights, RoPE then
  QK-norm, relu² MLP, untied head, logits softcap 15), batched, with attention through
  `F.scaled_dot_product_attention` (causal), as nanochat itself runs it;
- batch: `--rows` windows of `sequence_len + 1` tokens at random offsets of `train/train.bin`
  per step (`--micro` per forward pass, gradients accumulated), as zoo draws them;
- optimizer: `torch.optim.AdamW` (β 0.9/0.95, ε 1e-8, decay 0.1 on matrices only: not on the
  embedding), linear warm-up over 5% of the steps then cosine decay to a tenth, clipping to 1.0;
- precision: f32 master weights, `torch.autocast(bfloat16)` for the forward pass (`--precision`).

Prints one JSON line: tokens/s (steps after the first two), model TFLOP/s with zoo's count
(6 per matrix weight + 12·layers·width·context per token), MFU against `--peak-tflops`
(989: an H100/H200 SXM's dense bf16), and the validation loss on the first 16 windows of
`train/validation.bin`.

Usage: train_bench.py RUN_DIR --steps N [--rows 16] [--micro 16] [--lr 3e-3] [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nanochat_reference as ncr  # noqa: E402


class Attention(nn.Module):
    def __init__(self, c: ncr.GPTConfig) -> None:
        super().__init__()
        self.h, self.kv, self.hd = c.n_head, c.n_kv_head, c.n_embd // c.n_head
        self.c_q = nn.Linear(c.n_embd, self.h * self.hd, bias=False)
        self.c_k = nn.Linear(c.n_embd, self.kv * self.hd, bias=False)
        self.c_v = nn.Linear(c.n_embd, self.kv * self.hd, bias=False)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.c_q(x).view(b, t, self.h, self.hd)
        k = self.c_k(x).view(b, t, self.kv, self.hd)
        v = self.c_v(x).view(b, t, self.kv, self.hd)
        q, k = ncr.norm(ncr.apply_rotary(q, cos, sin)), ncr.norm(ncr.apply_rotary(k, cos, sin))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.h != self.kv:  # each kv head serves a contiguous group of query heads
            k, v = k.repeat_interleave(self.h // self.kv, 1), v.repeat_interleave(self.h // self.kv, 1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, c: ncr.GPTConfig) -> None:
        super().__init__()
        self.attn = Attention(c)
        self.mlp = ncr.MLP(c)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(ncr.norm(x), cos, sin)
        return x + self.mlp(ncr.norm(x))


class GPT(ncr.GPT):
    """The reference model (its parameters and names) with batched blocks and forward pass."""

    def __init__(self, c: ncr.GPTConfig) -> None:
        super().__init__(c)
        self.transformer["h"] = nn.ModuleList([Block(c) for _ in range(c.n_layer)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        cos, sin = ncr.rotary(t, self.config.n_embd // self.config.n_head)
        cos, sin = cos.to(ids.device)[None, :, None, :], sin.to(ids.device)[None, :, None, :]
        x = ncr.norm(self.transformer.wte(ids))
        for block in self.transformer.h:
            x = block(x, cos, sin)
        logits = self.lm_head(ncr.norm(x)).float()
        return ncr.SOFTCAP * torch.tanh(logits / ncr.SOFTCAP)


def tokens(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<u4").astype(np.int64)


def windows(data: np.ndarray, rng: np.random.Generator, rows: int, length: int) -> torch.Tensor:
    starts = rng.integers(0, len(data) - length + 1, size=rows)
    return torch.from_numpy(np.stack([data[s:s + length] for s in starts]))


def lr_at(step: int, total: int, peak: float) -> float:
    warmup = min(max(total // 20, 1), 1000)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return peak * 0.1 + (peak - peak * 0.1) * 0.5 * (1 + math.cos(math.pi * progress))


def initialise(model: GPT) -> None:
    """zoo's initialisation (crates/train/src/family/nanochat.rs): embedding N(0, 1); matrices
    N(0, 1/√in · min(1, √(out/in))); the attention and MLP output projections and the head 0."""
    with torch.no_grad():
        for name, w in model.named_parameters():
            if "wte" in name:
                nn.init.normal_(w, std=1.0)
            elif name.endswith("c_proj.weight") or name == "lm_head.weight":
                nn.init.zeros_(w)
            else:
                out, inp = w.shape
                nn.init.normal_(w, std=min(1.0, math.sqrt(out / inp)) / math.sqrt(inp))


def loss_of(model: GPT, batch: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    inputs, targets = batch[:, :-1], batch[:, 1:]
    with torch.autocast(batch.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--rows", type=int, default=16, help="windows per optimizer step")
    p.add_argument("--micro", type=int, default=16, help="windows per forward pass")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--precision", choices=["bf16", "f32"], default="bf16")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test")
    a = p.parse_args()

    fields = json.loads((a.run_dir / "config.json").read_text())
    config = ncr.GPTConfig(**{k: fields[k] for k in ncr.GPTConfig.__dataclass_fields__})
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    model = GPT(config).to(device)
    initialise(model)
    decay = [w for n, w in model.named_parameters() if "wte" not in n]
    plain = [w for n, w in model.named_parameters() if "wte" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    dtype = torch.bfloat16 if a.precision == "bf16" else None
    train = tokens(a.run_dir / "train" / "train.bin")
    validation = tokens(a.run_dir / "train" / "validation.bin")
    window = config.sequence_len + 1
    rng = np.random.default_rng(a.seed)
    timed_tokens, timed_seconds = 0, 0.0
    for step in range(a.steps):
        sync(device)
        began = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, a.steps, a.lr)
        batch = windows(train, rng, a.rows, window).to(device)
        for chunk in batch.split(a.micro):
            (loss_of(model, chunk, dtype) * (chunk.shape[0] / a.rows)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if step >= 2:
            timed_tokens += a.rows * config.sequence_len
            timed_seconds += time.perf_counter() - began
    with torch.no_grad():
        count = min(16, len(validation) // window)
        lead = torch.from_numpy(np.stack([validation[i * window:(i + 1) * window] for i in range(count)]))
        val = float(loss_of(model, lead.to(device), dtype))
    products = sum(w.numel() for n, w in model.named_parameters() if "wte" not in n)
    flops_per_token = 6 * products + 12 * config.n_layer * config.n_embd * config.sequence_len
    per_second = timed_tokens / max(timed_seconds, 1e-9)
    print(json.dumps({
        "peer": "pytorch-eager", "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "precision": a.precision, "steps": a.steps, "rows": a.rows, "micro": a.micro,
        "tokens_per_second": round(per_second, 1), "flops_per_token": flops_per_token,
        "model_tflops": round(per_second * flops_per_token / 1e12, 2),
        "mfu": round(per_second * flops_per_token / (a.peak_tflops * 1e12), 4),
        "validation_loss": round(val, 4),
    }))


if __name__ == "__main__":
    main()
