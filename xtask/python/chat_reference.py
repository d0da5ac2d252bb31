"""chat_reference.json: what a fixture's chat template renders, for zoo's template engine.

For every fixture whose tokenizer_config.json has a `chat_template`: a list of
`{"messages", "add_generation_prompt", "rendered", "tokens"}` where `rendered` is exactly
`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` and `tokens`
is transformers' tokenization of `rendered` with `add_special_tokens=False` (the template already
writes BOS where the model wants one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from transformers import AutoTokenizer

from fixture_types import dumps_json

#: (messages, add_generation_prompt): a single user turn; system + user; a multi-turn chat; and
#: a finished exchange with multi-byte UTF-8, tabs, space runs and newlines.
CONVERSATIONS: list[tuple[list[dict[str, str]], bool]] = [
    ([{"role": "user", "content": "Hello, who are you?"}], True),
    (
        [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Name a colour."},
        ],
        True,
    ),
    (
        [
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
        ],
        True,
    ),
    (
        [
            {"role": "user", "content": "Café naïve — 東京 🚀\n\n\tindented   three spaces\nend"},
            {"role": "assistant", "content": "Ça marche 😊\nligne deux"},
        ],
        False,
    ),
]


def has_chat_template(model_dir: Path) -> bool:
    path = model_dir / "tokenizer_config.json"
    if not path.is_file():
        return False
    return bool(json.loads(path.read_text(encoding="utf-8")).get("chat_template"))


def chat_reference(model_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The entries, and notes on where tokenizer.json alone (`tokenizers`) tokenizes a rendered
    conversation differently from transformers."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    entries, notes = [], []
    for messages, add_generation_prompt in CONVERSATIONS:
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        tokens = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        raw_tokens = raw.encode(rendered, add_special_tokens=False).ids
        if raw_tokens != tokens:
            notes.append(f"{rendered[:40]!r}…: transformers {tokens[:8]}…, "
                         f"tokenizer.json {raw_tokens[:8]}…")
        entries.append({
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "rendered": rendered,
            "tokens": tokens,
        })
    return entries, notes


def compare_with_mistral_common(entries: list[dict[str, Any]], spm_model: Path) -> list[str]:
    """Compares `tokens` with mistral-common's own chat encoding (v1 tokenizer) for the
    conversations it accepts (those ending with a user turn). Returns notes on the differences.

    Known difference: tokenizer.json (legacy SentencePiece conversion, a `Prepend("▁")`
    normalizer) tokenizes the text after a special token (`<s> [INST]`, `</s> [INST]`) with an
    extra "▁" (id 28705) that mistral-common, which encodes the pieces separately, does not have.
    Any other difference is an error.
    """
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage, SystemMessage, UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    roles = {"user": UserMessage, "assistant": AssistantMessage, "system": SystemMessage}
    mistral = MistralTokenizer.from_file(str(spm_model))
    special, space = {1, 2}, 28705
    notes = []
    for entry in entries:
        if entry["messages"][-1]["role"] != "user":
            continue
        request = ChatCompletionRequest(
            messages=[roles[m["role"]](content=m["content"]) for m in entry["messages"]]
        )
        expected = mistral.encode_chat_completion(request).tokens
        tokens = entry["tokens"]
        if tokens == expected:
            continue
        extra = [i for i in range(1, len(tokens))
                 if tokens[i] == space and tokens[i - 1] in special]
        if [t for i, t in enumerate(tokens) if i not in extra] != expected:
            raise AssertionError(f"{entry['rendered']!r}: mistral-common gives {expected}, "
                                 f"the template + tokenizer {tokens}")
        notes.append(f"{entry['rendered'][:24]!r}…: as mistral-common except an extra ▁ "
                     f"(28705) after a special token at {extra}")
    return notes


def write_chat_reference(entries: list[dict[str, Any]], path: Path) -> None:
    path.write_text(dumps_json(entries) + "\n", encoding="utf-8")
