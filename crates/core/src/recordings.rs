//! What a GPU backend recorded of one KV cache's forward steps, to replay them ([`Recordings`]:
//! burn-cuda's and candle-cuda's CUDA graphs), kept in the cache's [`StepMemory`].
//!
//! One policy for every backend that records: a recording per step shape (the backend's own
//! key: rows, slots, attention bucket), at most [`Recordings::KEPT`] of them (the oldest is
//! dropped first: a long generation crosses a few buckets, a server's batches change shape),
//! each trusted only once a replay has matched the same step run op by op
//! ([`Recording::checked`]), and all of them dropped for good once one fails or differs
//! ([`Recordings::turn_off`]), after which the cache runs op by op.

use std::sync::OnceLock;

use crate::StepMemory;

/// Whether backends may record and replay steps at all: `ZOO_CUDA_GRAPHS=0` turns it off for
/// every backend (read once).
pub fn switched_on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("ZOO_CUDA_GRAPHS").map_or(true, |v| v != "0"))
}

/// One KV cache's recordings, by shape `S`; `G` is what the backend replays.
pub struct Recordings<S, G> {
    kept: Vec<Recording<S, G>>,
    off: bool,
}

/// A recorded step of one shape.
pub struct Recording<S, G> {
    /// The shape of step it replays.
    pub shape: S,
    /// What the backend replays.
    pub graph: G,
    /// Whether a replay has matched the same step run op by op.
    pub checked: bool,
}

impl<S, G> Default for Recordings<S, G> {
    fn default() -> Self {
        Self { kept: Vec::new(), off: false }
    }
}

impl<S: PartialEq + Send + Sync + 'static, G: Send + Sync + 'static> Recordings<S, G> {
    /// Recordings kept per KV cache.
    pub const KEPT: usize = 16;

    /// The recordings `memory` holds, made (empty) the first time, or when it holds anything
    /// else (`None` only if a downcast of what was just stored failed, which it cannot).
    pub fn of(memory: &mut StepMemory) -> Option<&mut Self> {
        let held = memory.0.get_or_insert_with(|| Box::new(Self::default()));
        if !held.is::<Self>() {
            *held = Box::new(Self::default());
        }
        held.downcast_mut::<Self>()
    }

    /// Whether recording has been turned off for this cache.
    pub fn is_off(&self) -> bool {
        self.off
    }

    /// The recording of `shape`, if one is kept.
    pub fn find(&mut self, shape: &S) -> Option<&mut Recording<S, G>> {
        self.kept.iter_mut().find(|k| k.shape == *shape)
    }

    /// Keeps `graph` as the recording of `shape` (`checked` when it is already trusted),
    /// dropping the oldest recording when [`Self::KEPT`] are kept.
    pub fn keep(&mut self, shape: S, graph: G, checked: bool) {
        if self.kept.len() >= Self::KEPT {
            self.kept.remove(0);
        }
        self.kept.push(Recording { shape, graph, checked });
    }

    /// Drops every recording and records nothing more for this cache.
    pub fn turn_off(&mut self) {
        self.off = true;
        self.kept.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Recordings;
    use crate::StepMemory;

    #[test]
    fn recordings_live_in_the_step_memory_by_shape_and_drop_the_oldest() {
        let mut memory = StepMemory::default();
        let kept = Recordings::<usize, String>::of(&mut memory).unwrap();
        for shape in 0..Recordings::<usize, String>::KEPT + 1 {
            kept.keep(shape, format!("graph {shape}"), false);
        }
        let again = Recordings::<usize, String>::of(&mut memory).unwrap();
        assert!(again.find(&0).is_none(), "the oldest is dropped past KEPT");
        let found = again.find(&3).expect("a kept recording is found by its shape");
        assert_eq!((found.graph.as_str(), found.checked), ("graph 3", false));
        found.checked = true;
        assert!(Recordings::<usize, String>::of(&mut memory).unwrap().find(&3).unwrap().checked);
    }

    #[test]
    fn turned_off_recordings_stay_off_and_empty() {
        let mut memory = StepMemory::default();
        let kept = Recordings::<u8, ()>::of(&mut memory).unwrap();
        kept.keep(1, (), true);
        kept.turn_off();
        let again = Recordings::<u8, ()>::of(&mut memory).unwrap();
        assert!(again.is_off() && again.find(&1).is_none());
    }

    #[test]
    fn memory_holding_something_else_is_made_anew() {
        let mut memory = StepMemory(Some(Box::new(7u32)));
        assert!(!Recordings::<u8, ()>::of(&mut memory).unwrap().is_off());
        assert!(memory.0.as_ref().is_some_and(|m| m.is::<Recordings<u8, ()>>()));
    }
}
