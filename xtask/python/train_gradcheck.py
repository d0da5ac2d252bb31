#!/usr/bin/env python3
"""Gradient-check fixtures for `zoo train`: for a tiny nanochat GPT (xtask/python/
nanochat_reference.py) and a tiny GPT-2 (transformers' GPT2LMHeadModel), random weights, a fixed
batch of token windows, the mean next-token cross-entropy and its gradient with respect to every
parameter, computed by PyTorch in float64 from the float32 weights.

Writes tests/fixtures/train_gradcheck/<family>/: config.json, model.safetensors (f32 weights,
checkpoint names and layouts), grads.safetensors (f32 gradients under the same names and
layouts; GPT-2's tied head adds into wte's) and reference.json (the windows and the loss).
crates/train/tests/gradcheck.rs compares Burn's gradients with these (1e-4 relative), with no
Python at test time.

Usage: .venv/bin/python xtask/python/train_gradcheck.py   (scripts/setup-python.sh makes .venv)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nanochat_reference as ncr  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fixtures/train_gradcheck"
VOCAB, WINDOWS, LENGTH = 96, 2, 12
STD = 0.3  # every parameter random (nanochat zero-inits its head and projections)


def windows(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (WINDOWS, LENGTH + 1), generator=generator)


def randomize(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * STD)


def write(name: str, config: dict, weights: dict, grads: dict, batch: torch.Tensor, loss: float) -> None:
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    f32 = lambda d: {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}  # noqa: E731
    save_file(f32(weights), out / "model.safetensors", metadata={"format": "pt"})
    save_file(f32(grads), out / "grads.safetensors", metadata={"format": "pt"})
    reference = {"windows": batch.tolist(), "loss": loss,
                 "made_by": "xtask/python/train_gradcheck.py (PyTorch, float64)"}
    (out / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    print(f"{out}: loss {loss:.6f}, {len(grads)} gradients")


def nanochat() -> None:
    fields = dict(sequence_len=16, vocab_size=VOCAB, n_layer=2, n_head=4, n_kv_head=2, n_embd=32)
    model = ncr.GPT(ncr.GPTConfig(**fields))
    randomize(model, 1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    model = model.double()
    batch = windows(2)
    logits = torch.cat([model(w[:-1]) for w in batch])  # [windows·T, vocab]
    loss = F.cross_entropy(logits, batch[:, 1:].reshape(-1))
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    write("nanochat", {"model_type": "nanochat", **fields}, weights, grads, batch, loss.item())


def gpt2() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    fields = dict(vocab_size=VOCAB, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                  activation_function="gelu_new", layer_norm_epsilon=1e-5)
    config = GPT2Config(**fields, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config).eval()
    randomize(model, 3)
    # The head is tied to wte: one parameter, stored once.
    weights = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    model = model.double()
    batch = windows(4)
    logits = model(input_ids=batch[:, :-1]).logits  # [windows, T, vocab]
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters() if k != "lm_head.weight"}
    config_json = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], **fields}
    write("gpt2", config_json, weights, grads, batch, loss.item())


if __name__ == "__main__":
    torch.manual_seed(0)
    nanochat()
    gpt2()
