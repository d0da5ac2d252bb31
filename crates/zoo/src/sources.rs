//! What loading does to the tensors a model takes from a checkpoint, as hooks on the
//! checkpoint's weight source ([`zoo_core::Hooked`]): one counts the bytes handed out (for
//! progress and load statistics), one converts every tensor to f32 (`--dtype f32`).

use std::sync::atomic::{AtomicU64, Ordering};

use zoo_core::{DType, GetHook, Result, WeightMeta, WeightSource, WeightView};

/// Counts the bytes of the tensors handed out and reports them.
pub(crate) struct ByteCount<'a> {
    progress: &'a (dyn Fn(u64, u64) + Sync),
    total: u64,
    done: AtomicU64,
}

impl<'a> ByteCount<'a> {
    /// Counts what is taken from `source`, reporting `(done, total)` bytes to `progress`; the
    /// total is summed from the tensors' descriptions, so no tensor is read (or decoded) to size
    /// it.
    pub(crate) fn new(source: &dyn WeightSource, progress: &'a (dyn Fn(u64, u64) + Sync)) -> Self {
        let total = source.names().iter().filter_map(|n| source.meta(n).ok()).map(|m| m.bytes()).sum();
        Self { progress, total, done: AtomicU64::new(0) }
    }

    /// Bytes handed out so far.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl GetHook for ByteCount<'_> {
    fn on_get(&self, _name: &str, view: WeightView) -> Result<WeightView> {
        let done = self.done.fetch_add(view.data.len() as u64, Ordering::Relaxed) + view.data.len() as u64;
        (self.progress)(done, self.total.max(done));
        Ok(view)
    }
}

/// Converts every tensor to f32 as it is handed out: quantised weights are dequantised on load.
pub(crate) struct ToF32;

impl GetHook for ToF32 {
    fn on_get(&self, _name: &str, view: WeightView) -> Result<WeightView> {
        if view.dtype == DType::F32 {
            return Ok(view);
        }
        WeightView::from_f32(view.name.clone(), view.shape.clone(), &view.to_f32_vec())
    }

    fn on_meta(&self, meta: WeightMeta) -> WeightMeta {
        WeightMeta { dtype: DType::F32, ..meta }
    }
}
