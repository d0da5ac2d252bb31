//! Gemma 4's vocabulary (`tokenizer.ggml.model = "gemma4"`): BPE with merges, as
//! `tokenizer.ggml.merges` lists them, over text spelled SentencePiece's way (spaces are `▁`,
//! no prefix, characters without a token are `<0xNN>` byte tokens) rather than in GPT-2's byte
//! alphabet. Text is split only into lines and runs of newlines; a piece that is a token is
//! taken whole (llama.cpp does so for runs of newlines, the merges for other pieces give the
//! same). BOS is always added, as llama.cpp does for Gemma 4.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{DecoderWrapper, SplitDelimiterBehavior, Tokenizer as HfTokenizer};

use super::vocab::GgufVocab;
use crate::spm_bpe::METASPACE;

/// Builds the tokenizer from the vocabulary and its `tokenizer.ggml.merges`.
pub fn build(mut vocab: GgufVocab, merges: &[&str]) -> Result<HfTokenizer, String> {
    vocab.add_bos = Some(true);
    let ids: Vocab = GgufVocab::index(vocab.tokens.iter().map(String::as_str))?.into_iter().collect();
    let mut builder =
        BPE::builder().vocab_and_merges(ids, super::bpe::pairs(merges)?).byte_fallback(true).ignore_merges(true);
    if let Some(unk) = vocab.unk {
        builder = builder.unk_token(vocab.token(unk).to_string());
    }
    let bpe = builder.build().map_err(|e| format!("`tokenizer.ggml.merges`: {e}"))?;
    let mut inner = HfTokenizer::new(bpe);
    inner.with_normalizer(Some(Replace::new(" ", METASPACE.to_string()).map_err(|e| e.to_string())?));
    let lines = Split::new(SplitPattern::Regex("\n+".into()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| e.to_string())?;
    inner.with_pre_tokenizer(Some(lines));
    let unspace = Replace::new(METASPACE.to_string(), " ").map_err(|e| e.to_string())?;
    let decoder = vec![DecoderWrapper::Replace(unspace), ByteFallback::new().into(), Fuse::new().into()];
    inner.with_decoder(Some(DecoderSequence::new(decoder)));
    super::add_vocab_tokens(&mut inner, &vocab);
    if let Some(processor) = super::post_processor(&vocab, true)? {
        inner.with_post_processor(Some(processor));
    }
    Ok(inner)
}
