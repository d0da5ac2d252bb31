//! A weight source that forwards to another and passes every tensor it hands out through a
//! hook: loading wraps the checkpoint's source this way to record the names taken
//! ([`crate::Tracked`]), to count bytes for progress, and to convert tensors to f32. The
//! wrapper forwards the lookups; a [`GetHook`] says what happens to each tensor on `get`.

use crate::{Result, WeightMeta, WeightSource, WeightView};

/// What a [`Hooked`] source does with each tensor it hands out.
pub trait GetHook: Send + Sync {
    /// Sees `view`, just read under `name`, and returns what the caller receives.
    fn on_get(&self, name: &str, view: WeightView) -> Result<WeightView>;

    /// What `meta` answers for a tensor the inner source describes as `meta`: unchanged, unless
    /// the hook changes the tensors it hands out.
    fn on_meta(&self, meta: WeightMeta) -> WeightMeta {
        meta
    }
}

/// A weight source that forwards to `inner` and passes each tensor it hands out through `hook`.
pub struct Hooked<'a, H> {
    inner: &'a dyn WeightSource,
    hook: H,
}

impl<'a, H: GetHook> Hooked<'a, H> {
    /// `inner`'s tensors, each passed through `hook` as it is handed out.
    pub fn new(inner: &'a dyn WeightSource, hook: H) -> Self {
        Self { inner, hook }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &'a dyn WeightSource {
        self.inner
    }

    /// The hook, with whatever it has gathered.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

impl<H: GetHook> WeightSource for Hooked<'_, H> {
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
        Ok(self.hook.on_meta(self.inner.meta(name)?))
    }

    fn get(&self, name: &str) -> Result<WeightView> {
        self.hook.on_get(name, self.inner.get(name)?)
    }
}
