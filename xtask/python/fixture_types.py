"""Types shared by the fixture generator (fixtures.py) and the model-family modules.

A *family* (GPT-2, Qwen2, Mistral, nanochat) says how to build a tiny model with trained-scale
weights, how to write it in each file layout, and how to load a directory back as a `Runner`
(the reference implementation) and a `TextCodec` (the reference tokenizer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import torch

#: File layouts. HF families: "hub" = old hub files written by hand (transformers 4.x config,
#: hub tensor names and buffers), "save_pretrained" = what transformers 5 writes.
#: nanochat: "safetensors" = config.json + model.safetensors, "checkpoint" = nanochat's own
#: model_<step>.pt + meta_<step>.json.
#: Prompts shared by all fixtures: plain English, multi-byte UTF-8 (accents, dash, CJK, emoji),
#: and whitespace runs (double newline, tab, three spaces, CRLF).
PROMPTS: list[str] = [
    "Hello, my name is",
    "Café naïve — 東京 🚀 ok",
    "line one\n\n\tindented   three spaces\r\nend",
]

Layout = Literal["hub", "save_pretrained", "safetensors", "checkpoint"]


class TextCodec(Protocol):
    """The part of a tokenizer the reference needs."""

    #: Number of token ids the tokenizer knows (ids at or above it have no text).
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt, with the special tokens the model expects (e.g. BOS)."""
        ...

    def decode(self, ids: list[int]) -> str: ...


class Runner(Protocol):
    """A reference model loaded from a fixture directory, in one compute dtype."""

    #: Rows of the logits (the model's vocab_size, padded rows included).
    vocab_size: int
    #: Generation stops at these ids (a fixture's greedy path must avoid them).
    eos_token_ids: set[int]

    def logits(self, ids: list[int]) -> torch.Tensor:
        """Logits [len(ids), vocab] of one full forward pass over `ids`."""
        ...

    def generate(self, ids: list[int], max_new_tokens: int) -> tuple[list[int], list[torch.Tensor]]:
        """Greedy continuation and, per step s, the logits row [vocab] that chose token s
        (step 0 is the last prompt position; step s >= 1 the s-th decode step)."""
        ...


@dataclass(frozen=True)
class Family:
    """How to build, write and load one model family."""

    #: A float32 model of the given config (keyword arguments) with trained-scale weights.
    build: Callable[[dict[str, Any], torch.Generator], Any]
    #: Writers by layout: (model, spec, out_dir) -> None; each writes weights and config.
    writers: dict[str, Callable[[Any, Any, Path], None]]
    #: The reference implementation of a fixture directory, computing in the given dtype.
    load_runner: Callable[[Path, torch.dtype], Runner]
    #: The reference tokenizer of a fixture directory.
    load_tokenizer: Callable[[Path], TextCodec]
    #: "library version" text recorded as reference.json's `generator`.
    generator: Callable[[], str]
    #: Extra checks of a written fixture directory (raise on failure), e.g. that a sliding
    #: window really is applied.
    verify: Callable[[Path], None] = field(default=lambda model_dir: None)


def normal_(tensor: torch.Tensor, std: float, gen: torch.Generator, mean: float = 0.0) -> None:
    """Fills `tensor` in place with N(mean, std²) drawn from `gen`."""
    values = torch.randn(tensor.shape, generator=gen, dtype=torch.float32) * std + mean
    tensor.data.copy_(values)


def dumps_json(value: Any, indent: str = "") -> str:
    """JSON with objects and lists of objects indented, lists of numbers on one line."""
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {dumps_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = [inner + dumps_json(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
