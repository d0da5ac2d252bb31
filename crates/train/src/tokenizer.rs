//! The run's tokenizer: a given `tokenizer.json`, or a byte-level BPE trained on the training
//! documents with the `tokenizers` crate (GPT-2's scheme: bytes mapped to printable characters,
//! so every text encodes), holding the family's special tokens.

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::error::{Result, TrainError};

/// Smallest vocabulary a trained BPE may have: the 256 bytes plus room for merges.
pub const MIN_VOCAB: usize = 260;

/// Trains a byte-level BPE of `vocab_size` entries (special tokens included) on `documents`.
pub fn train_bpe(documents: &[String], vocab_size: usize, special: &[&str], path: &Path) -> Result<Tokenizer> {
    let fail = |message: String| TrainError::Tokenizer { path: path.to_path_buf(), message };
    if vocab_size < MIN_VOCAB + special.len() {
        return Err(TrainError::config(
            "--vocab-size",
            format!("{vocab_size} is too small for a byte-level BPE (at least {})", MIN_VOCAB + special.len()),
        ));
    }
    let specials = special.iter().map(|s| AddedToken::from(s.to_string(), true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None::<tokenizers::NormalizerWrapper>)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(None::<tokenizers::PostProcessorWrapper>)
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    tokenizer.train(&mut trainer, documents.iter()).map_err(|e| fail(e.to_string()))?;
    let tokenizer: Tokenizer = tokenizer.into();
    Ok(tokenizer)
}

/// Loads a `tokenizer.json`, checking that it holds `special`.
pub fn load(path: &Path, special: &[&str]) -> Result<Tokenizer> {
    let tokenizer = Tokenizer::from_file(path)
        .map_err(|e| TrainError::Tokenizer { path: path.to_path_buf(), message: e.to_string() })?;
    special_ids(&tokenizer, special, path)?;
    Ok(tokenizer)
}

/// Saves `tokenizer` as `path`.
pub fn save(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    tokenizer.save(path, false).map_err(|e| TrainError::Tokenizer { path: path.to_path_buf(), message: e.to_string() })
}

/// The ids of `special`, in order; an error names the first one the tokenizer lacks.
pub fn special_ids(tokenizer: &Tokenizer, special: &[&str], path: &Path) -> Result<Vec<u32>> {
    special
        .iter()
        .map(|name| {
            tokenizer.token_to_id(name).ok_or_else(|| TrainError::Tokenizer {
                path: path.to_path_buf(),
                message: format!("has no `{name}` token, which this model family needs"),
            })
        })
        .collect()
}

/// Token ids of each document (no special tokens added).
pub fn encode(tokenizer: &Tokenizer, documents: &[String], path: &Path) -> Result<Vec<Vec<u32>>> {
    let encodings = tokenizer
        .encode_batch(documents.to_vec(), false)
        .map_err(|e| TrainError::Tokenizer { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
}
