//! SentencePiece-style BPE (Llama, Mistral) rebuilt from a bare vocabulary and merge list, as
//! Torchless files carry them.
//!
//! The result behaves like Mistral's own `tokenizer.json` (transformers' fast tokenizer):
//! - normalizer: prepend `▁`, then replace every space with `▁` (Metaspace behaviour);
//! - model: BPE with `byte_fallback` (`<0xXX>` tokens for characters not in the vocabulary) and
//!   `<unk>` fused;
//! - post-processor: `<s>` inserted before the text (BOS), when the vocabulary has it;
//! - decoder: `▁` → space, byte fallback, fuse, strip the one leading space.
//!
//! NOTE: Mistral's tokenizer.json does the `▁` handling with normalizers rather than a `Metaspace`
//! pre-tokenizer: the pre-tokenizer only prepends `▁` to text that does not already start with
//! one, so `" hello"` would lose a `▁` the reference keeps.

use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, Tokenizer as HfTokenizer};

use crate::error::{CheckpointError, Result};
use crate::tokenizer::TextTokenizer;

/// The word-boundary marker SentencePiece uses for spaces.
pub const METASPACE: char = '▁';

/// A BPE vocabulary and its merges, as Torchless files and `tokenizer.json` `model` sections hold
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BpeVocab {
    /// Token string → id, ordered by id.
    pub vocab: Vec<(String, u32)>,
    /// Merges by rank, each `"left right"`.
    pub merges: Vec<String>,
}

impl BpeVocab {
    /// Reads `model.vocab` and `model.merges` of a BPE `tokenizer.json`.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let json = crate::hf::read_json(path)?;
        let model = json.get("model").ok_or_else(|| CheckpointError::invalid(path, "tokenizer has no `model`"))?;
        if model.get("type").and_then(|t| t.as_str()).is_some_and(|t| t != "BPE") {
            return Err(CheckpointError::invalid(path, "tokenizer model is not BPE"));
        }
        let vocab =
            model.get("vocab").ok_or_else(|| CheckpointError::invalid(path, "tokenizer has no `model.vocab`"))?;
        let merges = model.get("merges").cloned().unwrap_or_default();
        Self::from_json(path, vocab, &merges)
    }

    /// Parses a vocabulary object (`{token: id}`) and a merge list (`"a b"` strings or `["a", "b"]`
    /// pairs); `path` names the file in errors.
    pub fn from_json(path: &Path, vocab: &serde_json::Value, merges: &serde_json::Value) -> Result<Self> {
        let object = vocab.as_object().ok_or_else(|| CheckpointError::invalid(path, "`vocab` is not an object"))?;
        let mut out = Vec::with_capacity(object.len());
        for (token, id) in object {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| CheckpointError::invalid(path, format!("vocab entry `{token}` has no valid id")))?;
            out.push((token.clone(), id));
        }
        out.sort_by_key(|(_, id)| *id);
        if let Some(w) = out.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(CheckpointError::invalid(path, format!("vocab id {} is used twice", w[0].1)));
        }
        let list = match merges {
            serde_json::Value::Null => &Vec::new(),
            serde_json::Value::Array(list) => list,
            _ => return Err(CheckpointError::invalid(path, "`merges` is not a list")),
        };
        let mut merges = Vec::with_capacity(list.len());
        for (rank, merge) in list.iter().enumerate() {
            let text = match merge {
                serde_json::Value::String(s) if s.contains(' ') => s.clone(),
                serde_json::Value::Array(pair) => match &pair[..] {
                    [serde_json::Value::String(a), serde_json::Value::String(b)] => format!("{a} {b}"),
                    _ => return Err(CheckpointError::invalid(path, format!("merge {rank} is not a pair"))),
                },
                _ => return Err(CheckpointError::invalid(path, format!("merge {rank} is not \"left right\""))),
            };
            merges.push(text);
        }
        Ok(Self { vocab: out, merges })
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.vocab.iter().find(|(t, _)| t == token).map(|(_, id)| *id)
    }

    /// Builds the tokenizer (see the module doc); `path` names the file in errors.
    pub fn tokenizer(&self, path: &Path) -> Result<TextTokenizer> {
        let error = |message: String| CheckpointError::Tokenizer { path: path.to_path_buf(), message };
        let vocab: tokenizers::models::bpe::Vocab = self.vocab.iter().cloned().collect();
        let mut merges = Vec::with_capacity(self.merges.len());
        for merge in &self.merges {
            // Split at the first space: neither side of a SentencePiece merge contains one.
            let (a, b) = merge.split_once(' ').ok_or_else(|| error(format!("merge `{merge}` has no space")))?;
            merges.push((a.to_string(), b.to_string()));
        }
        let mut builder = BPE::builder().vocab_and_merges(vocab, merges).byte_fallback(true).fuse_unk(true);
        if self.id("<unk>").is_some() {
            builder = builder.unk_token("<unk>".into());
        }
        let bpe = builder.build().map_err(|e| error(e.to_string()))?;
        let mut inner = HfTokenizer::new(bpe);
        let space = Replace::new(" ", METASPACE.to_string()).map_err(|e| error(e.to_string()))?;
        inner.with_normalizer(Some(NormalizerSequence::new(vec![
            NormalizerWrapper::Prepend(Prepend::new(METASPACE.to_string())),
            NormalizerWrapper::Replace(space),
        ])));
        let unspace = Replace::new(METASPACE.to_string(), " ").map_err(|e| error(e.to_string()))?;
        inner.with_decoder(Some(DecoderSequence::new(vec![
            DecoderWrapper::Replace(unspace),
            DecoderWrapper::ByteFallback(ByteFallback::new()),
            DecoderWrapper::Fuse(Fuse::new()),
            DecoderWrapper::Strip(Strip::new(' ', 1, 0)),
        ])));
        let specials: Vec<AddedToken> = ["<unk>", "<s>", "</s>"]
            .iter()
            .filter(|t| self.id(t).is_some())
            .map(|t| AddedToken::from(*t, true).normalized(false))
            .collect();
        inner.add_special_tokens(&specials);
        if let Some(bos) = self.id("<s>") {
            let template = TemplateProcessing::builder()
                .try_single("<s> $A")
                .and_then(|b| b.try_pair("<s> $A <s> $B:1"))
                .map_err(|e| error(e.to_string()))?
                .special_tokens(vec![("<s>", bos)])
                .build()
                .map_err(|e| error(e.to_string()))?;
            inner.with_post_processor(Some(template));
        }
        Ok(TextTokenizer::from_hf(inner, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo_core::Tokenizer;

    fn tiny() -> BpeVocab {
        let mut vocab: Vec<(String, u32)> =
            ["<unk>", "<s>", "</s>"].iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        for b in 0..=255u32 {
            vocab.push((format!("<0x{b:02X}>"), 3 + b));
        }
        for t in ["▁", "h", "i", "▁h", "▁hi", "!"] {
            let id = vocab.len() as u32;
            vocab.push((t.to_string(), id));
        }
        BpeVocab { vocab, merges: vec!["▁ h".into(), "▁h i".into()] }
    }

    #[test]
    fn encodes_with_bos_merges_and_byte_fallback() {
        let tok = tiny().tokenizer(Path::new("tiny")).unwrap();
        let hi = tok.token_to_id("▁hi").unwrap();
        let excl = tok.token_to_id("!").unwrap();
        // "é" is not in the vocabulary: its two UTF-8 bytes become <0xC3> <0xA9>.
        let ids = tok.encode("hi!é", true).unwrap();
        assert_eq!(ids, vec![1, hi, excl, 3 + 0xC3, 3 + 0xA9]);
        assert_eq!(tok.decode(&ids, true).unwrap(), "hi!é");
        assert_eq!(tok.encode("hi", false).unwrap(), vec![hi]);
    }

    #[test]
    fn bad_vocab_and_merges_are_errors() {
        let p = Path::new("x.bin");
        assert!(BpeVocab::from_json(p, &serde_json::json!({"a": -1}), &serde_json::json!([])).is_err());
        assert!(BpeVocab::from_json(p, &serde_json::json!({"a": 0, "b": 0}), &serde_json::json!([])).is_err());
        assert!(BpeVocab::from_json(p, &serde_json::json!({"a": 0}), &serde_json::json!(["ab"])).is_err());
        let ok = BpeVocab::from_json(p, &serde_json::json!({"b": 1, "a": 0}), &serde_json::json!([["a", "b"]]));
        assert_eq!(ok.unwrap(), BpeVocab { vocab: vec![("a".into(), 0), ("b".into(), 1)], merges: vec!["a b".into()] });
    }
}
