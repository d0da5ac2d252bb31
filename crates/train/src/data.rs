//! The run's data, prepared once: the corpus read and split, the tokenizer trained (or the
//! given one copied) into the run directory, and both splits tokenized into `train/train.bin`
//! and `train/validation.bin`. A resumed run maps the files it wrote.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::corpus::Corpus;
use crate::error::{Result, TrainError};
use crate::family::Family;
use crate::run_dir::RunDir;
use crate::token_file::TokenFile;

/// Tokenized training and validation data and the tokenizer that made them.
pub struct Data {
    /// The run's tokenizer (`DIR/tokenizer.json`).
    pub tokenizer: Tokenizer,
    /// Training tokens.
    pub train: TokenFile,
    /// Validation tokens.
    pub validation: TokenFile,
    /// The document delimiter's id (`<|bos|>`, `<|endoftext|>`).
    pub delimiter: u32,
}

/// How the tokenizer is obtained.
#[derive(Clone, Debug)]
pub enum TokenizerSource<'a> {
    /// This `tokenizer.json`.
    File(&'a Path),
    /// A byte-level BPE of this many entries, trained on the data.
    Train(usize),
}

impl Data {
    /// Reads, tokenizes and writes the data of a new run.
    pub fn prepare(family: Family, data: &Path, tokenizer: TokenizerSource<'_>, dir: &RunDir) -> Result<Self> {
        let corpus = Corpus::read(data)?;
        let special = family.special_tokens();
        let saved = dir.file("tokenizer.json");
        let tokenizer = match tokenizer {
            TokenizerSource::File(path) => crate::tokenizer::load(path, special)?,
            TokenizerSource::Train(vocab) => crate::tokenizer::train_bpe(&corpus.train, vocab, special, &saved)?,
        };
        crate::tokenizer::save(&tokenizer, &saved)?;
        let delimiter = crate::tokenizer::special_ids(&tokenizer, &special[..1], &saved)?[0];
        for (documents, name) in [(&corpus.train, "train.bin"), (&corpus.validation, "validation.bin")] {
            let ids = crate::tokenizer::encode(&tokenizer, documents, data)?;
            let tokens: Vec<u32> = ids.iter().flat_map(|doc| family.delimit(delimiter, doc)).collect();
            TokenFile::write(&dir.train_file(name), &tokens)?;
        }
        Self::open(family, dir)
    }

    /// Maps the data a run directory holds.
    pub fn open(family: Family, dir: &RunDir) -> Result<Self> {
        let path = dir.file("tokenizer.json");
        if !path.is_file() {
            return Err(TrainError::Resume { path: dir.root().to_path_buf(), message: "no tokenizer.json".into() });
        }
        let tokenizer = crate::tokenizer::load(&path, family.special_tokens())?;
        let delimiter = crate::tokenizer::special_ids(&tokenizer, &family.special_tokens()[..1], &path)?[0];
        let train = TokenFile::open(&dir.train_file("train.bin"))?;
        let validation = TokenFile::open(&dir.train_file("validation.bin"))?;
        Ok(Self { tokenizer, train, validation, delimiter })
    }

    /// Entries of the tokenizer's vocabulary, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}
