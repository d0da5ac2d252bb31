//! Weights a trainer owns. A backend made with [`crate::Burn::with_params`] hands out the
//! store's tensor for a name it has seen before, instead of making a new tensor from the
//! checkpoint's bytes; a name it has not seen is made resident once, marked as requiring
//! gradients (a no-op outside Burn's autodiff) and kept. So a model loaded through that
//! backend holds the trainer's parameters, and loading it again after an optimizer step picks
//! up the updated ones: training runs the same model code as inference.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::Tensor;

/// A shared, named set of parameters, each as the model holds it (`[out, in]` for linear
/// layers, whatever the checkpoint's layout).
#[derive(Debug)]
pub struct Params<BB: BurnBackend> {
    tensors: Arc<Mutex<BTreeMap<String, Tensor<BB, 2>>>>,
}

impl<BB: BurnBackend> Clone for Params<BB> {
    fn clone(&self) -> Self {
        Self { tensors: Arc::clone(&self.tensors) }
    }
}

impl<BB: BurnBackend> Default for Params<BB> {
    fn default() -> Self {
        Self { tensors: Arc::default() }
    }
}

impl<BB: BurnBackend> Params<BB> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Tensor<BB, 2>>> {
        // A panic while holding the lock leaves a map that is still whole: keep using it.
        self.tensors.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The parameter `name`, if the store has it.
    pub fn get(&self, name: &str) -> Option<Tensor<BB, 2>> {
        self.lock().get(name).cloned()
    }

    /// Sets (or replaces) the parameter `name`.
    pub fn insert(&self, name: impl Into<String>, tensor: Tensor<BB, 2>) {
        self.lock().insert(name.into(), tensor);
    }

    /// Every parameter, sorted by name.
    pub fn all(&self) -> Vec<(String, Tensor<BB, 2>)> {
        self.lock().iter().map(|(name, t)| (name.clone(), t.clone())).collect()
    }

    /// Parameters held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
