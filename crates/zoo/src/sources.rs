//! Weight sources that wrap a checkpoint's while a model loads: one counts the bytes handed out
//! (for progress and load statistics), one converts every tensor to f32 (`--dtype f32`).

use std::sync::atomic::{AtomicU64, Ordering};

use zoo_core::{DType, Result, WeightMeta, WeightSource, WeightView};

/// A weight source that counts the bytes handed out and reports them.
pub(crate) struct Counted<'a> {
    inner: &'a dyn WeightSource,
    progress: &'a (dyn Fn(u64, u64) + Sync),
    total: u64,
    done: AtomicU64,
}

impl<'a> Counted<'a> {
    /// Counts what `inner` hands out, reporting `(done, total)` bytes to `progress`; the total
    /// is summed from the tensors' descriptions, so no tensor is read (or decoded) to size it.
    pub(crate) fn new(inner: &'a dyn WeightSource, progress: &'a (dyn Fn(u64, u64) + Sync)) -> Self {
        let total = inner.names().iter().filter_map(|n| inner.meta(n).ok()).map(|m| m.bytes()).sum();
        Self { inner, progress, total, done: AtomicU64::new(0) }
    }

    /// Bytes handed out so far.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl WeightSource for Counted<'_> {
    fn source_name(&self) -> String {
        self.inner.source_name()
    }

    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }

    fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    fn meta(&self, name: &str) -> Result<WeightMeta> {
        self.inner.meta(name)
    }

    fn get(&self, name: &str) -> Result<WeightView> {
        let view = self.inner.get(name)?;
        let done = self.done.fetch_add(view.data.len() as u64, Ordering::Relaxed) + view.data.len() as u64;
        (self.progress)(done, self.total.max(done));
        Ok(view)
    }
}

/// A checkpoint's weights with every tensor converted to f32 as it is handed out: quantised
/// weights are dequantised on load.
pub(crate) struct AsF32<'a>(pub(crate) &'a dyn WeightSource);

impl WeightSource for AsF32<'_> {
    fn source_name(&self) -> String {
        self.0.source_name()
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    fn names(&self) -> Vec<String> {
        self.0.names()
    }

    fn meta(&self, name: &str) -> Result<WeightMeta> {
        Ok(WeightMeta { dtype: DType::F32, ..self.0.meta(name)? })
    }

    fn get(&self, name: &str) -> Result<WeightView> {
        let view = self.0.get(name)?;
        if view.dtype == DType::F32 {
            return Ok(view);
        }
        WeightView::from_f32(view.name.clone(), view.shape.clone(), &view.to_f32_vec())
    }
}
