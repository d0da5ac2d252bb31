"""nanochat fixtures: tokenizer training, weight init, the two file layouts, and the reference
runner (nanochat_reference.py, a PyTorch port of nanochat V0's GPT).

Tokenizer: a byte-level BPE trained with the `tokenizers` library on a fixed corpus
(data/bpe-corpus.txt, a frozen copy of some of the project's spec notes), with nanochat's split
regex, laid out like nanochat's tiktoken encoding: ids 0-255 are the single bytes (id = byte
value), merge i gets id 256 + i, and the 9 special tokens follow. The total is exactly
TOKENIZER_SIZE = 2048, a multiple of 64, so the model's vocab_size equals the tokenizer's size
(as V0's loader asserts) and is already "padded". Unlike nanochat's own tokenizer.json, the
post-processor prepends <|bos|>: encode(text, add_special_tokens=True) gives what nanochat feeds
a base model, `tokenizer(text, prepend="<|bos|>")`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

import nanochat_reference
from fixture_types import Family, normal_

#: nanochat/tokenizer.py @ 3a5e0bc, verbatim.
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
SPECIAL_TOKENS = [
    "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
    "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>",
]
TOKENIZER_SIZE = 2048
CORPUS = Path(__file__).parent / "data" / "bpe-corpus.txt"
#: nanochat's engine stops generating at these.
STOP_TOKENS = ("<|bos|>", "<|assistant_end|>")
CHECKPOINT_STEP = 200

# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def byte_level_pipeline(tokenizer: Tokenizer) -> Tokenizer:
    """nanochat's HF-tokenizer setup: no normalizer, regex split then ByteLevel; ByteLevel
    decoder."""
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(corpus: Path = CORPUS) -> Tokenizer:
    """Deterministic BPE training (no special tokens yet), then the tiktoken-style id layout."""
    trainer = BpeTrainer(
        vocab_size=TOKENIZER_SIZE - len(SPECIAL_TOKENS),
        min_frequency=0,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    trained = byte_level_pipeline(Tokenizer(BPE(unk_token=None, fuse_unk=False)))
    trained.train_from_iterator(corpus.read_text(encoding="utf-8").split("\n\n"), trainer)
    merges = [tuple(m) for m in json.loads(trained.to_str())["model"]["merges"]]
    assert len(merges) == TOKENIZER_SIZE - len(SPECIAL_TOKENS) - 256, "corpus too small"

    # ids: byte b -> b (its ByteLevel character), merge i -> 256 + i
    byte_chars = {b: c for c, b in bytes_to_unicode_inverse().items()}
    vocab = {byte_chars[b]: b for b in range(256)}
    for i, (left, right) in enumerate(merges):
        vocab[left + right] = 256 + i
    tokenizer = byte_level_pipeline(Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False)))
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    bos = tokenizer.token_to_id("<|bos|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A $B", special_tokens=[("<|bos|>", bos)]
    )
    assert tokenizer.get_vocab_size() == TOKENIZER_SIZE and bos == len(vocab)
    return tokenizer


def bytes_to_unicode_inverse() -> dict[str, int]:
    """GPT-2's ByteLevel alphabet: printable character -> byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    assert set(chars) == set(pre_tokenizers.ByteLevel.alphabet())
    return chars


def nanochat_tokenizer_files(assets: Path, out_dir: Path) -> None:
    """tokenizer.json of the nanochat fixtures (trained here; no asset needed)."""
    train_tokenizer().save(str(out_dir / "tokenizer.json"), pretty=False)


class NanochatTokenizer:
    """tokenizer.json with <|bos|> prepended, checked against nanochat's own encode:
    `tokenizer.encode(text, add_special_tokens=False)` with the bos id inserted first."""

    def __init__(self, model_dir: Path) -> None:
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.vocab_size = self._tokenizer.get_vocab_size()
        self.bos = self._tokenizer.token_to_id("<|bos|>")

    def encode(self, text: str) -> list[int]:
        ids = self._tokenizer.encode(text).ids
        assert ids == [self.bos, *self._tokenizer.encode(text, add_special_tokens=False).ids]
        return ids

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=False)


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def build(config: dict[str, Any], gen: torch.Generator) -> nanochat_reference.GPT:
    """Trained-scale init: every nn.Linear N(0, (3/√fan_in)²); wte N(0, 1) rounded to bf16
    (nanochat stores wte in bf16; being bf16-representable, both fixture forms hold the same
    values). There are no norm weights or biases."""
    model = nanochat_reference.GPT(nanochat_reference.GPTConfig(**config))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name == "transformer.wte.weight":
                normal_(param, 1.0, gen)
                param.copy_(param.to(torch.bfloat16).float())
            else:
                normal_(param, 3.0 / math.sqrt(param.shape[1]), gen)
    return model.eval()


def write_safetensors(model: nanochat_reference.GPT, spec: Any, out_dir: Path) -> None:
    """config.json (model_type + GPTConfig fields) and model.safetensors in float32 with
    nanochat's tensor names."""
    config = {"model_type": "nanochat", **vars(model.config)}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tensors = {k: v.to(spec.dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, out_dir / "model.safetensors", metadata={"format": "pt"})


def write_checkpoint(model: nanochat_reference.GPT, spec: Any, out_dir: Path) -> None:
    """nanochat's own checkpoint files, as base_train V0 writes them (from a torch.compile'd
    model: keys prefixed `_orig_mod.`): model_000200.pt (wte bf16, the rest float32) and
    meta_000200.json. No optimizer file."""
    state = {}
    for name, tensor in model.state_dict().items():
        dtype = torch.bfloat16 if name == "transformer.wte.weight" else spec.dtype
        state[f"_orig_mod.{name}"] = tensor.detach().to(dtype).clone()
    assert torch.equal(state["_orig_mod.transformer.wte.weight"].float(),
                       model.transformer.wte.weight), "wte must be bf16-representable"
    torch.save(state, out_dir / f"model_{CHECKPOINT_STEP:06d}.pt")
    config = vars(model.config)
    meta = {
        "step": CHECKPOINT_STEP,
        "val_bpb": bits_per_byte(model, CORPUS.read_text(encoding="utf-8")[:2000]),
        "model_config": config,
        "user_config": base_train_user_config(config),
        "device_batch_size": 32,
        "max_seq_len": config["sequence_len"],
    }
    (out_dir / f"meta_{CHECKPOINT_STEP:06d}.json").write_text(json.dumps(meta, indent=2))


def base_train_user_config(config: dict[str, Any]) -> dict[str, Any]:
    """scripts/base_train.py V0's settings (its `user_config`), for a run of this model's size."""
    return {
        "run": "dummy", "depth": config["n_layer"], "max_seq_len": config["sequence_len"],
        "num_iterations": CHECKPOINT_STEP, "target_flops": -1.0, "target_param_data_ratio": 20,
        "device_batch_size": 32, "total_batch_size": 524288, "embedding_lr": 0.2,
        "unembedding_lr": 0.004, "weight_decay": 0.0, "matrix_lr": 0.02, "grad_clip": 1.0,
        "eval_every": 250, "eval_tokens": 20 * 524288, "core_metric_every": 2000,
        "core_metric_max_per_task": 500, "sample_every": 2000,
        "model_tag": f"d{config['n_layer']}",
    }


@torch.no_grad()
def bits_per_byte(model: nanochat_reference.GPT, text: str) -> float:
    """The model's bits per byte on `text` (meta's val_bpb; the model is untrained)."""
    tokenizer = train_tokenizer()
    ids = tokenizer.encode(text, add_special_tokens=False).ids[: model.config.sequence_len]
    logits = model(torch.tensor(ids[:-1]))
    nats = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum")
    n_bytes = sum(len(tokenizer.id_to_token(i)) for i in ids[1:])  # 1 ByteLevel char = 1 byte
    return nats.item() / math.log(2) / n_bytes


# ---------------------------------------------------------------------------------------------
# Reference
# ---------------------------------------------------------------------------------------------


class NanochatRunner:
    def __init__(self, model_dir: Path, dtype: torch.dtype) -> None:
        self.model = nanochat_reference.load(model_dir, dtype)
        self.vocab_size = self.model.config.vocab_size
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.eos_token_ids = {tokenizer.token_to_id(t) for t in STOP_TOKENS}

    def logits(self, ids: list[int]) -> torch.Tensor:
        return self.model(torch.tensor(ids))

    def generate(self, ids: list[int], max_new_tokens: int) -> tuple[list[int], list[torch.Tensor]]:
        return nanochat_reference.generate_greedy(self.model, ids, max_new_tokens)


def generator() -> str:
    return (f"xtask/python/nanochat_reference.py (nanochat V0 @ 3a5e0bc), "
            f"torch {torch.__version__.split('+')[0]}")


NANOCHAT = Family(
    build=build,
    writers={"safetensors": write_safetensors, "checkpoint": write_checkpoint},
    load_runner=NanochatRunner,
    load_tokenizer=NanochatTokenizer,
    generator=generator,
)
