//! The vocabulary in a GGUF file's `tokenizer.ggml.*` metadata, read and checked once for every
//! tokenizer kind: `tokens` (id = index), `scores`, `token_type`, the special token ids and the
//! `add_bos_token` / `add_eos_token` / `add_space_prefix` flags.
//!
//! Every array must have one entry per token and every id must name a token; anything else is
//! an error message (the caller adds the file), never a panic. Empty token strings become
//! `[EMPTY_<id>]`, as llama.cpp names them, so they cannot collide.

use std::collections::{BTreeMap, HashMap};

use crate::gguf::value::Value;

/// Most tokens a vocabulary may have (the largest real ones have about 262 000).
pub const MAX_TOKENS: usize = 1 << 22;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// 0: no type recorded.
    Undefined,
    /// 1: an ordinary vocabulary entry.
    Normal,
    /// 2: the unknown token (`<unk>`).
    Unknown,
    /// 3: a control token (`<s>`, `<|im_end|>`): special, skipped when decoding without specials.
    Control,
    /// 4: a user-defined token: matched whole in the text before anything else.
    UserDefined,
    /// 5: unused.
    Unused,
    /// 6: a byte-fallback token `<0xNN>`.
    Byte,
}

impl TokenType {
    fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Undefined,
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }
}

/// A GGUF vocabulary.
#[derive(Debug)]
pub struct GgufVocab {
    /// Token strings, by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (all 0 when absent).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type` (all normal when absent).
    pub types: Vec<TokenType>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`, when present.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`, when present.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`, when present.
    pub add_space_prefix: Option<bool>,
}

impl GgufVocab {
    /// Reads the vocabulary from `metadata`.
    pub fn read(metadata: &BTreeMap<String, Value>) -> Result<Self, String> {
        let tokens = tokens(metadata)?;
        let n = tokens.len();
        let id = |key: &str| special_id(metadata, key, n);
        Ok(Self {
            scores: scores(metadata, n)?,
            types: token_types(metadata, n)?,
            bos: id("bos_token_id")?,
            eos: id("eos_token_id")?,
            unk: id("unknown_token_id")?,
            add_bos: flag(metadata, "add_bos_token")?,
            add_eos: flag(metadata, "add_eos_token")?,
            add_space_prefix: flag(metadata, "add_space_prefix")?,
            tokens,
        })
    }

    /// The ids of `spelled` (the token strings as the model sees them, by id), or which one
    /// appears twice.
    pub fn index<'a>(spelled: impl IntoIterator<Item = &'a str>) -> Result<HashMap<String, u32>, String> {
        let mut ids = HashMap::new();
        for (id, token) in spelled.into_iter().enumerate() {
            if let Some(first) = ids.insert(token.to_string(), id as u32) {
                return Err(format!("token {token:?} appears twice in `tokenizer.ggml.tokens` (ids {first} and {id})"));
            }
        }
        Ok(ids)
    }

    /// The token `id`'s string (ids are checked on reading).
    pub fn token(&self, id: u32) -> &str {
        &self.tokens[id as usize]
    }

    /// Token strings of `kind`, in id order.
    pub fn of_type(&self, kind: TokenType) -> impl Iterator<Item = &str> {
        self.tokens.iter().zip(&self.types).filter(move |(_, &t)| t == kind).map(|(s, _)| s.as_str())
    }
}

fn key(k: &str) -> String {
    format!("tokenizer.ggml.{k}")
}

/// The array under `tokenizer.ggml.<k>`, if present.
fn array<'a>(metadata: &'a BTreeMap<String, Value>, k: &str) -> Result<Option<&'a [Value]>, String> {
    match metadata.get(&key(k)) {
        None => Ok(None),
        Some(v) => v.as_array().map(Some).ok_or_else(|| format!("`{}` is a {}, not an array", key(k), v.type_name())),
    }
}

/// An array that must have one entry per token.
fn per_token<'a>(metadata: &'a BTreeMap<String, Value>, k: &str, n: usize) -> Result<Option<&'a [Value]>, String> {
    let items = array(metadata, k)?;
    match items {
        Some(items) if items.len() != n => Err(format!("`{}` has {} entries for {n} tokens", key(k), items.len())),
        _ => Ok(items),
    }
}

/// The strings of the array `tokenizer.ggml.<k>`, which must be present.
pub fn strings<'a>(metadata: &'a BTreeMap<String, Value>, k: &str) -> Result<Vec<&'a str>, String> {
    let items = array(metadata, k)?.ok_or_else(|| format!("no `{}` array", key(k)))?;
    items
        .iter()
        .map(|v| v.as_str().ok_or_else(|| format!("`{}` holds a {}, not strings", key(k), v.type_name())))
        .collect()
}

fn tokens(metadata: &BTreeMap<String, Value>) -> Result<Vec<String>, String> {
    let tokens = strings(metadata, "tokens")?;
    if tokens.is_empty() || tokens.len() > MAX_TOKENS {
        return Err(format!("`tokenizer.ggml.tokens` has {} tokens (1 to {MAX_TOKENS} allowed)", tokens.len()));
    }
    let named = |(id, t): (usize, &&str)| if t.is_empty() { format!("[EMPTY_{id}]") } else { t.to_string() };
    Ok(tokens.iter().enumerate().map(named).collect())
}

fn scores(metadata: &BTreeMap<String, Value>, n: usize) -> Result<Vec<f32>, String> {
    let Some(items) = per_token(metadata, "scores", n)? else { return Ok(vec![0.0; n]) };
    let number = |v: &Value| {
        v.as_f64()
            .map(|s| s as f32)
            .ok_or_else(|| format!("`tokenizer.ggml.scores` holds a {}, not numbers", v.type_name()))
    };
    items.iter().map(number).collect()
}

fn token_types(metadata: &BTreeMap<String, Value>, n: usize) -> Result<Vec<TokenType>, String> {
    let Some(items) = per_token(metadata, "token_type", n)? else { return Ok(vec![TokenType::Normal; n]) };
    let kind = |(id, v): (usize, &Value)| {
        v.as_i64()
            .and_then(TokenType::from_code)
            .ok_or_else(|| format!("`tokenizer.ggml.token_type` of token {id} is {v:?}, not a type from 0 to 6"))
    };
    items.iter().enumerate().map(kind).collect()
}

/// `tokenizer.ggml.<k>`: absent, or the id of one of the `n` tokens.
fn special_id(metadata: &BTreeMap<String, Value>, k: &str, n: usize) -> Result<Option<u32>, String> {
    let Some(v) = metadata.get(&key(k)) else { return Ok(None) };
    match v.as_u64() {
        Some(id) if id < n as u64 => Ok(Some(id as u32)),
        _ => Err(format!("`{}` is {v:?}, not the id of one of the {n} tokens", key(k))),
    }
}

fn flag(metadata: &BTreeMap<String, Value>, k: &str) -> Result<Option<bool>, String> {
    match metadata.get(&key(k)) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| format!("`{}` is a {}, not a bool", key(k), v.type_name())),
    }
}
