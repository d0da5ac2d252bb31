//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`: Llama 1 and 2, Mistral, Phi-3
//! and their fine-tunes) as a `tokenizers` BPE over the vocabulary, with merges derived from
//! the scores.
//!
//! SentencePiece (and llama.cpp) tokenize such a vocabulary by repeatedly joining the adjacent
//! pair of pieces whose concatenation is the highest-scoring token. A BPE whose merges are all
//! pairs of tokens that concatenate to a token, ranked by that token's score, best first, joins
//! the same pairs in the same order. Equal scores are ranked by the joined token's id, then the
//! left and right ids, as transformers' converters rank them: a vocabulary that llama.cpp
//! converted from a `tokenizer.json` without `tokenizer.model` has the score -1000 on every
//! token, and its ids are then its merge order. (llama.cpp itself takes the leftmost pair among
//! equal scores, so on such files it tokenizes differently from the model's own tokenizer.)
//!
//! Encoding: each stretch of text between added tokens gets a leading `▁` when
//! `add_space_prefix` (default: on), every space becomes `▁`, and a character without a token
//! becomes the `<0xNN>` tokens of its UTF-8 bytes. BOS is added unless `add_bos_token` is
//! false; EOS only when `add_eos_token`. Decoding reverses it: `▁` is a space, byte tokens are
//! bytes, and the one leading space the prefix put there is removed.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{DecoderWrapper, NormalizerWrapper, Tokenizer as HfTokenizer};

use super::vocab::{GgufVocab, TokenType};
use crate::spm_bpe::METASPACE;

/// Builds the tokenizer (see the module doc). Without ids in the file, BOS is token 1, EOS 2
/// and the unknown token 0, as in every SentencePiece vocabulary llama.cpp converts.
pub fn build(mut vocab: GgufVocab) -> Result<HfTokenizer, String> {
    let n = vocab.tokens.len() as u32;
    let default = |id: u32| (id < n).then_some(id);
    vocab.bos = vocab.bos.or(default(1));
    vocab.eos = vocab.eos.or(default(2));
    vocab.unk = vocab.unk.or(default(0));
    let vocab = &vocab;
    let ids = GgufVocab::index(vocab.tokens.iter().map(String::as_str))?;
    let merges = merges(vocab, &ids);
    let ids: Vocab = ids.into_iter().collect();
    let mut builder = BPE::builder().vocab_and_merges(ids, merges).byte_fallback(true).fuse_unk(true);
    if let Some(unk) = vocab.unk {
        builder = builder.unk_token(vocab.token(unk).to_string());
    }
    let bpe = builder.build().map_err(|e| e.to_string())?;
    let mut inner = HfTokenizer::new(bpe);
    let prefix = vocab.add_space_prefix.unwrap_or(true);
    inner.with_normalizer(Some(normalizer(prefix)?));
    inner.with_decoder(Some(decoder(prefix)?));
    super::add_vocab_tokens(&mut inner, vocab);
    if let Some(processor) = super::post_processor(vocab, true)? {
        inner.with_post_processor(Some(processor));
    }
    Ok(inner)
}

/// Every (left, right) pair of tokens whose concatenation is a token, best first (see the
/// module doc). Byte tokens neither join nor result from joining.
fn merges(vocab: &GgufVocab, ids: &HashMap<String, u32>) -> Vec<(String, String)> {
    let joinable = |id: u32| vocab.types[id as usize] != TokenType::Byte;
    // (score of the joined token, its id, left id, right id)
    let mut ranked: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (id, token) in vocab.tokens.iter().enumerate() {
        let id = id as u32;
        if !joinable(id) {
            continue;
        }
        for (split, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(split);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                if joinable(l) && joinable(r) {
                    ranked.push((vocab.scores[id as usize], id, l, r));
                }
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3))));
    ranked.into_iter().map(|(_, _, l, r)| (vocab.token(l).to_string(), vocab.token(r).to_string())).collect()
}

/// Spaces to `▁`, after a leading `▁` when `prefix`.
fn normalizer(prefix: bool) -> Result<NormalizerWrapper, String> {
    let space = Replace::new(" ", METASPACE.to_string()).map_err(|e| e.to_string())?;
    if !prefix {
        return Ok(space.into());
    }
    Ok(NormalizerSequence::new(vec![Prepend::new(METASPACE.to_string()).into(), space.into()]).into())
}

/// `▁` to spaces, byte tokens to bytes, and the prefix's space removed when `prefix`.
fn decoder(prefix: bool) -> Result<DecoderWrapper, String> {
    let unspace = Replace::new(METASPACE.to_string(), " ").map_err(|e| e.to_string())?;
    let mut steps = vec![DecoderWrapper::Replace(unspace), ByteFallback::new().into(), Fuse::new().into()];
    if prefix {
        steps.push(Strip::new(' ', 1, 0).into());
    }
    Ok(DecoderSequence::new(steps).into())
}
