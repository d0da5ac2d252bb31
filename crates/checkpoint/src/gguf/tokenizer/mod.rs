//! The tokenizer and chat template a GGUF file describes in its `tokenizer.*` metadata.
//!
//! `tokenizer.ggml.model` picks the kind: `llama` is SentencePiece ([`spm`]), `gpt2` byte-level
//! BPE ([`bpe`], split by `tokenizer.ggml.pre`, [`pre`]), `gemma4` BPE over `▁`-spelled text
//! ([`gemma4`]). Other kinds (`bert`'s WordPiece, `t5`'s
//! Unigram, ...) and unknown `pre` names are refused with the reason ([`GgufTokenizer::Unsupported`]),
//! so a model file still loads with `--tokenizer`. The vocabulary itself is checked ([`vocab`]):
//! arrays of the wrong length, ids outside it, repeated tokens are errors naming the file.
//!
//! Only metadata is read, so a vocabulary-only GGUF (llama.cpp's `ggml-vocab-*.gguf`) gives a
//! tokenizer too ([`from_file`]).
//!
//! NOTE: for `smollm` (and `starcoder`, `refact`, `command-r`) digits are split one by one, as the
//! model's own `tokenizer.json` and llama.cpp do. transformers 5.23's GGUF loader does not know
//! these names and keeps GPT-2's split, so on text with runs of digits its ids differ from the
//! model's (and ours); on text without digits they are the same.

pub mod bpe;
pub mod gemma4;
pub mod pre;
pub mod spm;
pub mod vocab;

use std::collections::BTreeMap;
use std::path::Path;

use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use super::value::Value;
use crate::chat_template::ChatTemplate;
use crate::error::{CheckpointError, Result};
use crate::tokenizer::TextTokenizer;
use vocab::{GgufVocab, TokenType};

/// What a GGUF file's tokenizer metadata gives.
pub enum GgufTokenizer {
    /// The tokenizer, built.
    Built(Box<TextTokenizer>),
    /// A tokenizer zoo does not build, and why (one line).
    Unsupported(String),
    /// No tokenizer metadata (`tokenizer.ggml.model` absent or `none`).
    Absent,
}

/// The tokenizer `metadata` (of the file at `path`, named in errors) describes.
pub fn tokenizer(path: &Path, metadata: &BTreeMap<String, Value>) -> Result<GgufTokenizer> {
    let err = |message: String| CheckpointError::Tokenizer { path: path.to_path_buf(), message };
    let model = match metadata.get("tokenizer.ggml.model") {
        None => return Ok(GgufTokenizer::Absent),
        Some(v) => {
            v.as_str().ok_or_else(|| err(format!("`tokenizer.ggml.model` is a {}, not a string", v.type_name())))?
        }
    };
    let inner = match model {
        "none" | "no_vocab" => return Ok(GgufTokenizer::Absent),
        "llama" => spm::build(GgufVocab::read(metadata).map_err(err)?),
        "gpt2" => {
            let name = match metadata.get("tokenizer.ggml.pre") {
                None => "default",
                Some(v) => v.as_str().ok_or_else(|| err(format!("`tokenizer.ggml.pre` is a {}", v.type_name())))?,
            };
            let Some(pre) = pre::lookup(name) else {
                return Ok(GgufTokenizer::Unsupported(format!(
                    "`tokenizer.ggml.pre` `{name}` is not supported (zoo splits text for: {})",
                    pre::names().join(", ")
                )));
            };
            let vocab = GgufVocab::read(metadata).map_err(err)?;
            let merges = vocab::strings(metadata, "merges").map_err(err)?;
            bpe::build(&vocab, &merges, pre)
        }
        "gemma4" => {
            let vocab = GgufVocab::read(metadata).map_err(err)?;
            gemma4::build(vocab, &vocab::strings(metadata, "merges").map_err(err)?)
        }
        other => return Ok(GgufTokenizer::Unsupported(unsupported_model(other))),
    };
    Ok(GgufTokenizer::Built(Box::new(TextTokenizer::checked(inner.map_err(err)?, path)?)))
}

/// The tokenizer of the GGUF file at `path`, which may hold a vocabulary only; a file without
/// one, or with one zoo does not build, is an error saying so.
pub fn from_file(path: &Path) -> Result<TextTokenizer> {
    let gguf = super::Gguf::open(path)?;
    let built = crate::contain::contained(|| tokenizer(path, gguf.metadata()))
        .map_err(|message| CheckpointError::Tokenizer { path: path.to_path_buf(), message })??;
    match built {
        GgufTokenizer::Built(tokenizer) => Ok(*tokenizer),
        GgufTokenizer::Unsupported(message) => Err(CheckpointError::Tokenizer { path: path.to_path_buf(), message }),
        GgufTokenizer::Absent => Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
            message: "the GGUF file has no tokenizer (no `tokenizer.ggml.model`)".into(),
        }),
    }
}

/// Why `tokenizer.ggml.model` = `model` is refused.
fn unsupported_model(model: &str) -> String {
    let kind = match model {
        "bert" => " (WordPiece)",
        "t5" => " (SentencePiece Unigram)",
        "rwkv" => " (RWKV's trie)",
        _ => "",
    };
    format!("`tokenizer.ggml.model` `{model}`{kind} is not supported (zoo builds `llama`, `gpt2` and `gemma4`)")
}

/// Control and unknown tokens as special added tokens, user-defined ones as plain added tokens:
/// all matched whole in the text, as written, before anything else.
pub(crate) fn add_vocab_tokens(inner: &mut HfTokenizer, vocab: &GgufVocab) {
    let added = |kind: TokenType, special: bool| -> Vec<AddedToken> {
        vocab.of_type(kind).map(|t| AddedToken::from(t.to_string(), special).normalized(false)).collect()
    };
    let mut special = added(TokenType::Control, true);
    special.extend(added(TokenType::Unknown, true));
    inner.add_special_tokens(&special);
    inner.add_tokens(&added(TokenType::UserDefined, false));
}

/// BOS / EOS added around every encoded text: BOS when `add_bos_token` (`default_bos` when the
/// file does not say), EOS when `add_eos_token`.
pub(crate) fn post_processor(vocab: &GgufVocab, default_bos: bool) -> Result<Option<TemplateProcessing>, String> {
    let wanted = |flag: Option<bool>, default: bool, id: Option<u32>, key: &str| match (flag.unwrap_or(default), id) {
        (false, _) => Ok(None),
        (true, Some(id)) => Ok(Some((vocab.token(id).to_string(), id))),
        (true, None) if flag.is_none() => Ok(None),
        (true, None) => Err(format!("`tokenizer.ggml.add_{key}_token` is set but there is no `{key}_token_id`")),
    };
    let bos = wanted(vocab.add_bos, default_bos, vocab.bos, "bos")?;
    let eos = wanted(vocab.add_eos, false, vocab.eos, "eos")?;
    if bos.is_none() && eos.is_none() {
        return Ok(None);
    }
    let mut single: Vec<String> = bos.iter().map(|(t, _)| t.clone()).collect();
    single.push("$A".into());
    single.extend(eos.iter().map(|(t, _)| t.clone()));
    TemplateProcessing::builder()
        .try_single(single)
        .map_err(|e| format!("BOS/EOS template: {e}"))?
        .special_tokens(bos.into_iter().chain(eos).collect::<Vec<_>>())
        .build()
        .map(Some)
        .map_err(|e| format!("BOS/EOS template: {e}"))
}

/// The chat template (`tokenizer.chat_template`), with the special tokens it may use.
pub fn chat_template(path: &Path, metadata: &BTreeMap<String, Value>) -> Option<ChatTemplate> {
    let source = metadata.get("tokenizer.chat_template")?.as_str()?;
    let tokens = metadata.get("tokenizer.ggml.tokens").and_then(Value::as_array).unwrap_or(&[]);
    let mut special = BTreeMap::new();
    for (name, key) in [
        ("bos_token", "bos_token_id"),
        ("eos_token", "eos_token_id"),
        ("unk_token", "unknown_token_id"),
        ("pad_token", "padding_token_id"),
    ] {
        let id = metadata.get(&format!("tokenizer.ggml.{key}")).and_then(Value::as_u64);
        if let Some(token) = id.and_then(|id| tokens.get(usize::try_from(id).ok()?)?.as_str()) {
            special.insert(name.to_string(), token.to_string());
        }
    }
    Some(ChatTemplate::new(source, special, format!("{} (tokenizer.chat_template)", path.display())))
}
