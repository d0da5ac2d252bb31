//! The `Tokenizer` trait.

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
