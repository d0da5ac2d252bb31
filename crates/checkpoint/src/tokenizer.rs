//! Tokenizers, through the HF `tokenizers` crate: a `tokenizer.json`, GPT-2's byte-level BPE
//! files (`vocab.json` + `merges.txt`, or the same data as `encoder.json` + `vocab.bpe`), or a
//! GGUF file's vocabulary ([`crate::gguf::tokenizer`]).

use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};
use zoo_core::Tokenizer;

use crate::contain::contained;
use crate::error::{CheckpointError, Result};

/// File pairs holding GPT-2-style byte-level BPE: (vocabulary, merges).
const BPE_FILE_PAIRS: [(&str, &str); 2] = [("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")];

/// The GPT-2 end-of-text token, special in every byte-level BPE vocabulary that has it.
const ENDOFTEXT: &str = "<|endoftext|>";

/// A tokenizer backed by HF `tokenizers`.
pub struct TextTokenizer {
    inner: HfTokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    /// Loads a tokenizer from a `tokenizer.json` file, a GGUF file's vocabulary (a model or a
    /// vocabulary-only file), or a directory holding one of the supported file sets
    /// (`tokenizer.json` is preferred).
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_file() {
            if crate::sniff::sniff(path)? == Some(crate::sniff::FileKind::Gguf) {
                return crate::gguf::tokenizer::from_file(path);
            }
            return Self::from_json(path);
        }
        if let Some(found) = find_in_dir(path) {
            return match found {
                Found::Json(file) => Self::from_json(&file),
                Found::Bpe(vocab, merges) => Self::from_bpe_files(&vocab, &merges),
            };
        }
        Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
            message:
                "no tokenizer found: expected tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe \
                      (or pass --tokenizer PATH)"
                    .into(),
        })
    }

    /// Whether `dir` holds a tokenizer this type can load.
    pub fn exists_in(dir: &Path) -> bool {
        find_in_dir(dir).is_some()
    }

    /// Loads a `tokenizer.json` (at most [`crate::limits::MAX_TEXT_FILE`] bytes), then checks
    /// it: a vocabulary, and sample text encoded and decoded without the library failing.
    pub fn from_json(path: &Path) -> Result<Self> {
        let text = crate::limits::read_text(path)?;
        let inner = contained(|| text.parse::<HfTokenizer>())
            .map_err(|e| tokenizer_error(path, e))?
            .map_err(|e| tokenizer_error(path, zoo_core::quoted(&e.to_string())))?;
        Self::checked(inner, path)
    }

    /// `inner`, once it has a vocabulary and encodes and decodes sample text.
    pub(crate) fn checked(inner: HfTokenizer, path: &Path) -> Result<Self> {
        if inner.get_vocab_size(true) == 0 {
            return Err(tokenizer_error(path, "the vocabulary is empty"));
        }
        let tokenizer = Self { inner, path: path.to_path_buf() };
        for text in crate::verify::SAMPLE_TEXTS {
            let ids = tokenizer.encode(text, false).map_err(|e| tokenizer_error(path, e))?;
            tokenizer.decode(&ids, false).map_err(|e| tokenizer_error(path, e))?;
        }
        Ok(tokenizer)
    }

    /// Builds GPT-2's byte-level BPE from a vocabulary and a merges file.
    pub fn from_bpe_files(vocab: &Path, merges: &Path) -> Result<Self> {
        let (vocab_s, merges_s) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = contained(|| BPE::from_file(&vocab_s, &merges_s).build())
            .map_err(|e| tokenizer_error(vocab, e))?
            .map_err(|e| tokenizer_error(vocab, e))?;
        let mut inner = HfTokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if inner.token_to_id(ENDOFTEXT).is_some() {
            inner.add_special_tokens(&[AddedToken::from(ENDOFTEXT, true)]);
        }
        Self::checked(inner, vocab)
    }

    /// Wraps a tokenizer built in code; `path` is the file its data came from.
    pub fn from_hf(inner: HfTokenizer, path: &Path) -> Self {
        Self { inner, path: path.to_path_buf() }
    }

    /// Saves the tokenizer as a `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner.save(path, true).map_err(|e| tokenizer_error(path, e))
    }

    /// The file the tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

enum Found {
    Json(PathBuf),
    Bpe(PathBuf, PathBuf),
}

fn find_in_dir(dir: &Path) -> Option<Found> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Some(Found::Json(json));
    }
    BPE_FILE_PAIRS.iter().find_map(|(v, m)| {
        let (vocab, merges) = (dir.join(v), dir.join(m));
        (vocab.is_file() && merges.is_file()).then_some(Found::Bpe(vocab, merges))
    })
}

fn tokenizer_error(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Tokenizer { path: path.to_path_buf(), message: e.to_string() }
}

impl Tokenizer for TextTokenizer {
    fn encode(&self, text: &str, add_special_tokens: bool) -> zoo_core::Result<Vec<u32>> {
        let error = |e: String| zoo_core::Error::Tokenizer(format!("{}: {e}", self.path.display()));
        let encoding = contained(|| self.inner.encode(text, add_special_tokens))
            .map_err(error)?
            .map_err(|e| error(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> zoo_core::Result<String> {
        let error = |e: String| zoo_core::Error::Tokenizer(format!("{}: {e}", self.path.display()));
        contained(|| self.inner.decode(ids, skip_special_tokens)).map_err(error)?.map_err(|e| error(e.to_string()))
    }

    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
