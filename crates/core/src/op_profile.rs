//! Host time spent in each backend op, gathered by a [`DynBackend`](crate::DynBackend) that
//! carries an [`OpProfile`] (`zoo bench --profile`).
//!
//! An op's host time is the time its call takes to return: on a CPU backend, its whole cost; on
//! a GPU backend, the time to submit its kernels, plus any wait for the device (a read-back such
//! as `argmax_rows` waits for every kernel before it; a launch waits while the runtime's queue is
//! full). Where a decode step's ops add up to its wall time, the host is the limit, not the
//! device. Ops that call other ops (`scoped` runs a whole forward step) include their time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Calls of one op and the host time they took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpTime {
    /// Calls recorded.
    pub calls: u64,
    /// Their total host time.
    pub time: Duration,
}

/// Host time per op, shared by the backends that record into it; see the module docs. It
/// records from the start, until [`OpProfile::pause`].
#[derive(Debug, Default)]
pub struct OpProfile {
    ops: Mutex<BTreeMap<&'static str, OpTime>>,
    paused: AtomicBool,
}

impl OpProfile {
    /// Stops recording (calls are still timed, and dropped) until [`OpProfile::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed);
    }

    /// Records again after [`OpProfile::pause`].
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed);
    }

    /// Runs `call` and records its duration under `op`.
    pub fn time<T>(&self, op: &'static str, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = call();
        self.record(op, started.elapsed());
        out
    }

    /// Adds one call of `op` taking `elapsed`, unless paused.
    pub fn record(&self, op: &'static str, elapsed: Duration) {
        if self.paused.load(Ordering::Relaxed) {
            return;
        }
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = ops.entry(op).or_default();
        entry.calls += 1;
        entry.time += elapsed;
    }

    /// Forgets everything recorded so far.
    pub fn reset(&self) {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Every op recorded (since the last reset), by name.
    pub fn snapshot(&self) -> Vec<(&'static str, OpTime)> {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_and_time_per_op_until_reset() {
        let profile = OpProfile::default();
        assert_eq!(profile.time("a", || 7), 7);
        profile.record("a", Duration::from_micros(5));
        profile.record("b", Duration::from_micros(2));
        let snap = profile.snapshot();
        assert_eq!(snap.iter().map(|(name, t)| (*name, t.calls)).collect::<Vec<_>>(), [("a", 2), ("b", 1)]);
        assert!(snap[0].1.time >= Duration::from_micros(5));
        assert_eq!(snap[1].1.time, Duration::from_micros(2));
        profile.reset();
        assert!(profile.snapshot().is_empty());
    }

    #[test]
    fn a_paused_profile_drops_calls_until_resumed() {
        let profile = OpProfile::default();
        profile.pause();
        assert_eq!(profile.time("a", || 3), 3, "a paused profile still runs the call");
        assert!(profile.snapshot().is_empty());
        profile.resume();
        profile.record("a", Duration::from_micros(1));
        assert_eq!(profile.snapshot(), [("a", OpTime { calls: 1, time: Duration::from_micros(1) })]);
    }
}
