//! The tokenizer and chat template a GGUF file describes in its `tokenizer.*` metadata.
//!
//! `tokenizer.ggml.model = "gpt2"` is byte-level BPE: the vocabulary is `tokenizer.ggml.tokens`
//! (id = index, spelled in GPT-2's byte alphabet), the merges are `tokenizer.ggml.merges`
//! (`"a b"` strings, best first), tokens whose `tokenizer.ggml.token_type` is 3 (control) become
//! special added tokens and those of type 4 (user-defined) plain added tokens — as transformers'
//! GGUF loader builds it. `tokenizer.ggml.pre` picks how text is split before BPE, following
//! llama.cpp's pre-tokenizer table for the families zoo reads; unknown names get GPT-2's split.
//!
//! NOTE: for `smollm` (and `starcoder`, `refact`, `command-r`) digits are split one by one, as the
//! model's own `tokenizer.json` and llama.cpp do. transformers 5.23's GGUF loader does not know
//! these names and keeps GPT-2's split, so on text with runs of digits its ids differ from the
//! model's (and ours); on text without digits they are the same.
//!
//! SentencePiece vocabularies (`llama`) are not built yet: the checkpoint then has no tokenizer
//! and `--tokenizer` must name one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer as HfTokenizer};

use super::value::Value;
use crate::chat_template::ChatTemplate;
use crate::error::{CheckpointError, Result};
use crate::tokenizer::TextTokenizer;

/// `tokenizer.ggml.token_type` of control tokens (`<|im_end|>`).
const CONTROL: i64 = 3;
/// `tokenizer.ggml.token_type` of user-defined added tokens.
const USER_DEFINED: i64 = 4;

/// Llama 3's split (`llama-bpe`): letters, 1–3 digit groups, punctuation, newlines, spaces.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split: Llama 3's with single digits.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The tokenizer of a GGUF file, if its metadata describes one zoo can build.
pub fn tokenizer(path: &Path, metadata: &BTreeMap<String, Value>) -> Result<Option<TextTokenizer>> {
    let model = metadata.get("tokenizer.ggml.model").and_then(Value::as_str);
    if model != Some("gpt2") {
        return Ok(None);
    }
    let err = |message: String| CheckpointError::Tokenizer { path: path.to_path_buf(), message };
    let tokens = strings(metadata, "tokenizer.ggml.tokens").map_err(err)?;
    let merges = strings(metadata, "tokenizer.ggml.merges").map_err(err)?;
    let types = token_types(metadata, tokens.len()).map_err(err)?;

    let alphabet: HashMap<u8, char> = bytes_to_unicode();
    let spelled: std::collections::HashSet<char> = alphabet.values().copied().collect();
    let byte_level = |t: &str| {
        if t.chars().all(|c| spelled.contains(&c)) {
            t.to_string()
        } else {
            t.bytes().map(|b| alphabet[&b]).collect()
        }
    };
    let vocab: Vocab = tokens.iter().enumerate().map(|(id, t)| (byte_level(t), id as u32)).collect();
    let merges = merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').ok_or_else(|| err(format!("merge {m:?} is not two tokens")))?;
            Ok((a.to_string(), b.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| err(e.to_string()))?;
    let mut inner = HfTokenizer::new(bpe);
    let pre = metadata.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    inner.with_pre_tokenizer(Some(pre_tokenizer(pre).map_err(err)?));
    inner.with_decoder(Some(ByteLevelDecoder::default()));

    let is_spelled = |t: &str| t.chars().all(|c| spelled.contains(&c));
    let added = |kind: i64, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(&types)
            .filter(|(t, &ty)| ty == kind && is_spelled(t))
            .map(|(t, _)| AddedToken::from(t.to_string(), special).normalized(false))
            .collect()
    };
    inner.add_special_tokens(&added(CONTROL, true));
    inner.add_tokens(&added(USER_DEFINED, false));
    if let Some(processor) = post_processor(metadata, &tokens).map_err(err)? {
        inner.with_post_processor(Some(processor));
    }
    Ok(Some(TextTokenizer::from_hf(inner, path)))
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

fn strings<'a>(metadata: &'a BTreeMap<String, Value>, key: &str) -> Result<Vec<&'a str>, String> {
    let items = metadata.get(key).and_then(Value::as_array).ok_or_else(|| format!("no `{key}` array"))?;
    items.iter().map(|v| v.as_str().ok_or_else(|| format!("`{key}` holds a {}, not strings", v.type_name()))).collect()
}

/// `tokenizer.ggml.token_type`, or all normal when absent.
fn token_types(metadata: &BTreeMap<String, Value>, n: usize) -> Result<Vec<i64>, String> {
    let Some(items) = metadata.get("tokenizer.ggml.token_type") else { return Ok(vec![1; n]) };
    let items = items.as_array().ok_or("`tokenizer.ggml.token_type` is not an array")?;
    if items.len() != n {
        return Err(format!("`tokenizer.ggml.token_type` has {} entries for {n} tokens", items.len()));
    }
    items.iter().map(|v| v.as_i64().ok_or_else(|| "`tokenizer.ggml.token_type` holds a non-integer".into())).collect()
}

/// How text is split before BPE, by `tokenizer.ggml.pre`.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, String> {
    let byte_level = |use_regex| PreTokenizerWrapper::from(ByteLevel::new(false, true, use_regex));
    let split = |regex: &str| -> Result<PreTokenizerWrapper, String> {
        let split = Split::new(SplitPattern::Regex(regex.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| format!("pre-tokenizer `{pre}`: {e}"))?;
        Ok(Sequence::new(vec![split.into(), byte_level(false)]).into())
    };
    Ok(match pre {
        "smollm" | "starcoder" | "refact" | "command-r" => {
            Sequence::new(vec![Digits::new(true).into(), byte_level(true)]).into()
        }
        "llama3" | "llama-v3" | "llama-bpe" => split(LLAMA3_SPLIT)?,
        "qwen2" => split(QWEN2_SPLIT)?,
        _ => byte_level(true),
    })
}

/// BOS / EOS added around every encoded text when `tokenizer.ggml.add_bos_token` /
/// `add_eos_token` say so.
fn post_processor(metadata: &BTreeMap<String, Value>, tokens: &[&str]) -> Result<Option<TemplateProcessing>, String> {
    let flag = |k: &str| metadata.get(&format!("tokenizer.ggml.{k}")).and_then(Value::as_bool).unwrap_or(false);
    let token = |k: &str| -> Result<Option<(String, u32)>, String> {
        let Some(id) = metadata.get(&format!("tokenizer.ggml.{k}")).and_then(Value::as_u64) else { return Ok(None) };
        let text = usize::try_from(id).ok().and_then(|i| tokens.get(i)).ok_or(format!("`{k}` {id} is not a token"))?;
        Ok(Some((text.to_string(), id as u32)))
    };
    let bos = if flag("add_bos_token") { token("bos_token_id")? } else { None };
    let eos = if flag("add_eos_token") { token("eos_token_id")? } else { None };
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

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes stand for
/// themselves, the others for the characters from U+0100 on, in byte order.
fn bytes_to_unicode() -> HashMap<u8, char> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                (b, char::from(b))
            } else {
                let c = char::from_u32(next).unwrap_or('?');
                next += 1;
                (b, c)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_matches_gpt2() {
        let map = bytes_to_unicode();
        assert_eq!(map[&b' '], 'Ġ');
        assert_eq!(map[&b'\n'], 'Ċ');
        assert_eq!(map[&b'A'], 'A');
        assert_eq!(map.values().collect::<std::collections::HashSet<_>>().len(), 256);
    }
}
