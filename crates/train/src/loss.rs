//! The training loss: the model's forward pass over a batch of windows (each its own KV-cache
//! slot, all rows' logits) and the mean cross-entropy of each next token.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{DType, Int, Tensor, TensorData};
use zoo_backend_burn::{Burn, Kernels};
use zoo_core::{Batch, KvCache, LogitsRows, Model};

use crate::error::Result;

/// Mean next-token cross-entropy of `windows` (each `len + 1` tokens: inputs then the last
/// target), as a one-element tensor that backpropagates into the model's parameters.
pub fn cross_entropy<BB: BurnBackend + Kernels>(
    model: &dyn Model<Burn<BB>>,
    windows: &[Vec<u32>],
) -> Result<Tensor<BB, 1>> {
    let backend = model.backend();
    let len = windows.first().map_or(0, |w| w.len().saturating_sub(1));
    let mut batch = Batch::default();
    let mut targets = Vec::with_capacity(windows.len() * len);
    for (slot, window) in windows.iter().enumerate() {
        batch.push(slot, &window[..len]);
        targets.extend(window[1..].iter().map(|&t| t as i64));
    }
    let mut cache = KvCache::new(backend, &model.info().kv, windows.len(), len)?;
    let step = cache.plan(&batch, LogitsRows::All)?;
    let logits = model.forward_step(&step, &mut cache)?; // (rows·len, vocab)
    let logits = logits.burn().clone();
    // The loss is taken in f32 whatever the model computes in (mixed precision).
    let logits = if logits.dtype() == DType::F32 { logits } else { logits.cast(DType::F32) };
    let rows = targets.len();
    let targets = Tensor::<BB, 2, Int>::from_data(TensorData::new(targets, [rows, 1]), backend.device());
    let picked = log_softmax(logits, 1).gather(1, targets); // (rows, 1)
    Ok(picked.mean().neg())
}
