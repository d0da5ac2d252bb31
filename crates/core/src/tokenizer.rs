//! The `Tokenizer` trait and incremental detokenization for streaming.

use crate::Result;

/// Text ↔ token ids. Implemented in the checkpoint crate over the formats it reads.
pub trait Tokenizer: Send + Sync {
    /// Token ids of `text`; `add_special_tokens` adds what the tokenizer's post-processor adds
    /// (BOS for Llama-style models; nothing for GPT-2).
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>>;
    /// Text of `ids`; special tokens are dropped when `skip_special_tokens`.
    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String>;
    /// Ids the tokenizer knows (may be smaller than the model's vocabulary).
    fn vocab_size(&self) -> usize;
    /// The id of a token string, such as `<|endoftext|>`.
    fn token_to_id(&self, token: &str) -> Option<u32>;
}

/// Turns a stream of token ids into a stream of text pieces that are always whole UTF-8
/// characters: a character split across tokens is held back until its last byte arrives.
pub struct TextStream<'t> {
    tokenizer: &'t dyn Tokenizer,
    ids: Vec<u32>,
    emitted: usize,
}

impl<'t> TextStream<'t> {
    /// A stream with no tokens yet.
    pub fn new(tokenizer: &'t dyn Tokenizer) -> Self {
        Self { tokenizer, ids: Vec::new(), emitted: 0 }
    }

    /// Adds a token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids, true)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        Ok(self.take_new(text))
    }

    /// Whatever is left at the end, including an incomplete character as U+FFFD.
    pub fn finish(&mut self) -> Result<String> {
        let text = self.tokenizer.decode(&self.ids, true)?;
        Ok(self.take_new(text))
    }

    /// The full text decoded so far.
    pub fn text(&self) -> Result<String> {
        self.tokenizer.decode(&self.ids, true)
    }

    fn take_new(&mut self, text: String) -> String {
        // Decoding more tokens can rewrite earlier text (e.g. cleanup of spaces); emit only what
        // extends what was already shown.
        let new = text.get(self.emitted..).unwrap_or_default().to_string();
        self.emitted = self.emitted.max(text.len());
        new
    }
}
