//! Byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`: GPT-2, Llama 3, Qwen, SmolLM,
//! StarCoder, DeepSeek, ...), as transformers' GGUF loader and llama.cpp build them.
//!
//! Normal tokens are spelled in GPT-2's byte alphabet (id = index); the merges are
//! `tokenizer.ggml.merges` (`"a b"`, best first). Control, unknown and user-defined tokens are
//! stored as their text and matched whole in the text before the split (control and unknown
//! ones as special tokens). `tokenizer.ggml.pre` picks the split ([`super::pre`]).
//!
//! NOTE: a normal token not spelled in the byte alphabet (Command-R's `🇸`, id 470, beside its
//! spelled twin `ðŁĩ¸`) is kept as written: merges never produce it, as in llama.cpp, and it
//! decodes to its text.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::Tokenizer as HfTokenizer;

use super::pre::{self, Pre};
use super::vocab::GgufVocab;

/// Most merges a vocabulary may have (the largest real ones have about 515 000).
pub const MAX_MERGES: usize = 1 << 23;

/// Builds the tokenizer from the vocabulary, its `tokenizer.ggml.merges` and split.
pub fn build(vocab: &GgufVocab, merges: &[&str], pre: &Pre) -> Result<HfTokenizer, String> {
    let ids: Vocab = GgufVocab::index(vocab.tokens.iter().map(String::as_str))?.into_iter().collect();
    let bpe = BPE::builder()
        .vocab_and_merges(ids, pairs(merges)?)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| format!("`tokenizer.ggml.merges`: {e}"))?;
    let mut inner = HfTokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(pre::pre_tokenizer(pre)?));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    super::add_vocab_tokens(&mut inner, vocab);
    if let Some(processor) = super::post_processor(vocab, pre.add_bos)? {
        inner.with_post_processor(Some(processor));
    }
    Ok(inner)
}

/// `"left right"` merges as pairs; the separator is the first space after the first character
/// (as llama.cpp reads them, so a left side may be a space).
pub fn pairs(merges: &[&str]) -> Result<Vec<(String, String)>, String> {
    if merges.len() > MAX_MERGES {
        return Err(format!("`tokenizer.ggml.merges` has {} merges (at most {MAX_MERGES})", merges.len()));
    }
    let pair = |(rank, merge): (usize, &&str)| {
        let first = merge.chars().next().map_or(0, char::len_utf8);
        let split = merge[first..].find(' ').map(|i| i + first);
        let split = split.ok_or_else(|| format!("merge {rank} {merge:?} is not two tokens"))?;
        Ok((merge[..split].to_string(), merge[split + 1..].to_string()))
    };
    merges.iter().enumerate().map(pair).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_split_after_the_first_byte() {
        assert_eq!(pairs(&["a b", "  c", "Ġ Ġt"]).unwrap()[1..], [(" ".into(), "c".into()), ("Ġ".into(), "Ġt".into())]);
        assert!(pairs(&["ab"]).unwrap_err().contains("merge 0"));
        assert!(pairs(&[" "]).is_err());
    }
}
