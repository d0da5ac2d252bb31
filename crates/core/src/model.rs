//! The `Model` trait: a loaded network that maps new tokens plus a KV cache to logits.

use crate::backend::{scoped, Backend};
use crate::kv_cache::{Batch, KvCache, KvLayout, LogitsRows, Step};
use crate::Result;

/// Facts about a loaded model that generation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The family's registry name (`gpt2`, `qwen2`, ...).
    pub family: String,
    /// Rows of the output logits.
    pub vocab_size: usize,
    /// The longest sequence the model supports.
    pub max_context: usize,
    /// Token ids that end generation, from the model's config.
    pub eos_token_ids: Vec<u32>,
    /// Token strings that end generation, for models whose ids depend on the tokenizer they
    /// were trained with (resolved through the tokenizer by whoever loads the model).
    pub eos_token_names: Vec<String>,
    /// Token id prepended to prompts, if the model uses one.
    pub bos_token_id: Option<u32>,
    /// Shape of the KV cache.
    pub kv: KvLayout,
}

/// A loaded model, generic over the backend its weights live on.
pub trait Model<B: Backend>: Send + Sync {
    /// Facts about the model.
    fn info(&self) -> &ModelInfo;

    /// The backend holding the weights.
    fn backend(&self) -> &B;

    /// Runs the network over a step's new tokens. Writes their keys and values into `cache`
    /// (at the positions the step names) and returns logits `[rows, vocab]` for the step's
    /// `logit_rows`. Callers use [`forward`], which plans the step and commits it.
    fn forward_step(&self, step: &Step<'_>, cache: &mut KvCache<B>) -> Result<B::Tensor>;
}

/// A model run with a shorter context than its own: `--max-context`, which bounds the KV cache
/// every session and batch allocates.
pub struct LimitedContext<B: Backend> {
    inner: Box<dyn Model<B>>,
    info: ModelInfo,
}

impl<B: Backend> LimitedContext<B> {
    /// `inner` with at most `max_context` tokens per sequence (capped at the model's own; at
    /// least 1).
    pub fn new(inner: Box<dyn Model<B>>, max_context: usize) -> Self {
        let mut info = inner.info().clone();
        info.max_context = info.max_context.min(max_context.max(1));
        Self { inner, info }
    }
}

impl<B: Backend> Model<B> for LimitedContext<B> {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn backend(&self) -> &B {
        self.inner.backend()
    }

    fn forward_step(&self, step: &Step<'_>, cache: &mut KvCache<B>) -> Result<B::Tensor> {
        self.inner.forward_step(step, cache)
    }
}

/// Runs `model` over `batch`, appending it to `cache`; returns logits for the rows `rows` selects.
pub fn forward<B: Backend>(
    model: &dyn Model<B>,
    batch: &Batch,
    cache: &mut KvCache<B>,
    rows: LogitsRows,
) -> Result<B::Tensor> {
    let vocab_size = model.info().vocab_size;
    if let Some(&id) = batch.tokens().iter().find(|&&id| id as usize >= vocab_size) {
        return Err(crate::Error::TokenOutOfRange { id, vocab_size });
    }
    let step = cache.plan(batch, rows)?;
    let backend = model.backend();
    let mut memory = cache.take_memory();
    let logits = backend
        .run_step(&mut memory, &step, &mut || scoped(backend, step.tokens.len(), || model.forward_step(&step, cache)));
    cache.restore_memory(memory);
    let logits = logits?;
    cache.commit(&step);
    Ok(logits)
}
