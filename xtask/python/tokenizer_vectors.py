"""tests/fixtures/tokenizer-vectors/: llama.cpp's tokenizer test vectors, plus Mistral's.

llama.cpp's ggml-vocab-{qwen2,gpt-2,llama-spm}.gguf.{inp,out} are copied byte for byte from the
llama-cpp-python sdist (vendor/llama.cpp/models/). The qwen2 and gpt-2 expectations are checked
here against the fixtures' tokenizers. llama-spm is LLaMA's SentencePiece vocabulary (not
Mistral's: other ids), so mistral-v0.1.{inp,out} are added: the same inputs, with the ids of
Mistral-7B-v0.1's SentencePiece model (mistral-common's tokenizer.model.v1), checked against the
Mistral fixtures' tokenizer.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import sentencepiece
from tokenizers import Tokenizer

from hf_families import GPT3_ENCODER, MISTRAL_V1_SPM, ByteLevelBpe, asset

LLAMA_CPP_MODELS = "llama-cpp-python@0.3.36/vendor/llama.cpp/models"
VOCABS = ("qwen2", "gpt-2", "llama-spm")
SEPARATOR = "\n__ggml_vocab_test__\n"

README = """\
# Tokenizer test vectors

`ggml-vocab-{qwen2,gpt-2,llama-spm}.gguf.{inp,out}` are llama.cpp's tokenizer tests, copied
unchanged from the llama-cpp-python 0.3.36 sdist (`vendor/llama.cpp/models/`, MIT licence); the
`.gguf` vocabularies themselves are not included. `mistral-v0.1.{inp,out}` are made by
`xtask/python/tokenizer_vectors.py` in the same format.

Format (as llama.cpp's `tests/test-tokenizer-0` reads it):

- `.inp`: UTF-8 test strings, each followed by the line `__ggml_vocab_test__`, i.e. the file is
  `text₁ + "\\n__ggml_vocab_test__\\n" + text₂ + "\\n__ggml_vocab_test__\\n" + …`. Split on
  `"\\n__ggml_vocab_test__\\n"` and drop the empty last piece. Strings may be empty, contain
  newlines, tabs and runs of spaces. The three llama.cpp `.inp` files are identical (46 strings).
- `.out`: one line per test string, in order: its token ids, each preceded by one space
  (`" 1122 220 19"`), no BOS/EOS or other special tokens added; an empty string gives an empty line.

Which tokenizer each one expects:

| file | tokenizer | checked against |
|---|---|---|
| `ggml-vocab-qwen2.gguf.out` | Qwen2 byte-level BPE | `qwen2-tiny/tokenizer.json` (all 46 equal) |
| `ggml-vocab-gpt-2.gguf.out` | GPT-2 byte-level BPE | `gpt2-tiny/vocab.json` + `merges.txt` (all 46 equal) |
| `ggml-vocab-llama-spm.gguf.out` | LLaMA 1/2 SentencePiece (ids differ from Mistral's) | not checked here (no LLaMA tokenizer in the fixtures); `tests/tests/gguf_vocabs.rs` checks it against the `.gguf` itself (all 46 equal) |
| `mistral-v0.1.out` | Mistral-7B-v0.1 SentencePiece, ids from `sentencepiece` on mistral-common's `tokenizer.model.v1` | `mistral-tiny/tokenizer.json` with the `tokenizers` library (all 46 equal) |

Note: transformers 5's `LlamaTokenizer` (what `LlamaTokenizer.from_pretrained` on
`tokenizer.model` gives, and what AutoTokenizer picks for Mistral's tokenizer_config.json in a
directory without config.json) replaces tokenizer.json's `Prepend("▁")` normalizer by a Metaspace
pre-tokenizer and drops the dummy "▁" before a leading space (`" Hello"`: `[22557]` instead of
`[28705, 22557]`), so it disagrees with SentencePiece here. tokenizer.json through `tokenizers`,
and AutoTokenizer in the fixture directories (which picks `TokenizersBackend`), agree with it.
"""


def read_tests(inp: Path) -> list[str]:
    pieces = inp.read_bytes().decode("utf-8").split(SEPARATOR)  # keep \r\n as is
    assert pieces[-1] == "", f"{inp}: does not end with the separator"
    return pieces[:-1]


def format_out(ids_per_test: list[list[int]]) -> str:
    return "".join("".join(f" {i}" for i in ids) + "\n" for ids in ids_per_test)


def check_out(out: Path, tests: list[str], encode) -> None:
    """The expected ids must equal `encode`'s, and re-formatting them must give the same bytes."""
    expected = format_out([encode(t) for t in tests])
    if out.read_bytes().decode("utf-8") != expected:
        raise AssertionError(f"{out.name}: the fixture tokenizer disagrees with llama.cpp")


def write_vectors(out_root: Path, assets: Path) -> None:
    out_dir = out_root / "tokenizer-vectors"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    source = asset(assets, LLAMA_CPP_MODELS)
    for vocab in VOCABS:
        for ext in ("inp", "out"):
            name = f"ggml-vocab-{vocab}.gguf.{ext}"
            shutil.copyfile(source / name, out_dir / name)
    tests = read_tests(out_dir / "ggml-vocab-llama-spm.gguf.inp")
    for vocab in VOCABS:
        assert read_tests(out_dir / f"ggml-vocab-{vocab}.gguf.inp") == tests

    qwen = Tokenizer.from_file(str(out_root / "qwen2-tiny" / "tokenizer.json"))
    check_out(out_dir / "ggml-vocab-qwen2.gguf.out", tests,
              lambda t: qwen.encode(t, add_special_tokens=False).ids)
    gpt2 = ByteLevelBpe(asset(assets, f"{GPT3_ENCODER}/encoder.json"),
                        asset(assets, f"{GPT3_ENCODER}/vocab.bpe"))
    check_out(out_dir / "ggml-vocab-gpt-2.gguf.out", tests, gpt2.encode)

    spm = sentencepiece.SentencePieceProcessor(model_file=str(asset(assets, MISTRAL_V1_SPM)))
    shutil.copyfile(out_dir / "ggml-vocab-llama-spm.gguf.inp", out_dir / "mistral-v0.1.inp")
    (out_dir / "mistral-v0.1.out").write_bytes(format_out([spm.encode(t) for t in tests]).encode())
    mistral = Tokenizer.from_file(str(out_root / "mistral-tiny" / "tokenizer.json"))
    check_out(out_dir / "mistral-v0.1.out", tests,
              lambda t: mistral.encode(t, add_special_tokens=False).ids)
    (out_dir / "README.md").write_text(README, encoding="utf-8")
