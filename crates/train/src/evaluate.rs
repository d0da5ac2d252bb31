//! Evaluation: the mean loss over the first windows of the validation split (the same windows
//! every time, so the numbers compare), and greedy sample text from the start of a document.

use burn::tensor::backend::AutodiffBackend;
use tokenizers::Tokenizer;
use zoo_backend_burn::{Burn, Kernels};
use zoo_core::{Backend, Batch, KvCache, LogitsRows, Model};

use crate::error::{Result, TrainError};
use crate::step::{scalar, Plan};
use crate::token_file::{leading_windows, TokenFile};

/// Validation windows per evaluation.
const WINDOWS: usize = 16;

/// Mean loss over the validation split's first windows.
pub fn validation_loss<BB: AutodiffBackend + Kernels>(
    model: &dyn Model<Burn<BB>>,
    data: &TokenFile,
    plan: &Plan,
) -> Result<f32> {
    let windows = leading_windows(data, WINDOWS, plan.window);
    let mut total = 0.0;
    for chunk in windows.chunks(plan.micro) {
        total += scalar(crate::loss::cross_entropy(model, chunk)?)? * chunk.len() as f32;
    }
    Ok(total / windows.len().max(1) as f32)
}

/// Up to `tokens` greedy tokens after `start`, decoded (stops at `start` again, which
/// delimits documents).
pub fn sample<BB: AutodiffBackend + Kernels>(
    model: &dyn Model<Burn<BB>>,
    tokenizer: &Tokenizer,
    start: u32,
    tokens: usize,
) -> Result<String> {
    let backend = model.backend();
    let capacity = (tokens + 1).min(model.info().max_context);
    let mut cache = KvCache::new(backend, &model.info().kv, 1, capacity)?;
    let (mut next, mut ids) = (start, Vec::new());
    while cache.len(0) < capacity - 1 {
        let batch = Batch::single(&[next]);
        let step = cache.plan(&batch, LogitsRows::Last)?;
        let logits = model.forward_step(&step, &mut cache)?;
        cache.commit(&step);
        next = backend.argmax_rows(&logits)?[0];
        if next == start {
            break;
        }
        ids.push(next);
    }
    tokenizer.decode(&ids, true).map_err(|e| TrainError::config("tokenizer", e.to_string()))
}
