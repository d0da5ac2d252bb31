//! The learning-rate schedule: linear warm-up, then cosine decay to a tenth of the peak.

/// Learning rate per optimizer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Steps of linear warm-up.
    pub warmup: u64,
    /// The run's total steps; the decay ends there.
    pub total: u64,
}

/// Where the cosine ends, as a fraction of the peak.
const FLOOR: f64 = 0.1;

impl Schedule {
    /// A schedule over `total` steps with a warm-up of 5% of them (at least one step, at most
    /// 1 000).
    pub fn new(peak: f64, total: u64) -> Self {
        Self { peak, warmup: (total / 20).clamp(1, 1000), total }
    }

    /// The learning rate of step `step` (counted from 0).
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        let floor = self.peak * FLOOR;
        floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_the_floor() {
        let s = Schedule::new(1.0, 100);
        assert_eq!(s.warmup, 5);
        assert!((s.at(0) - 0.2).abs() < 1e-12 && (s.at(4) - 1.0).abs() < 1e-12);
        assert!((s.at(5) - 1.0).abs() < 1e-12, "decay starts at the peak");
        assert!(s.at(50) < s.at(20) && s.at(50) > 0.1);
        assert!((s.at(100) - 0.1).abs() < 1e-12 && (s.at(500) - 0.1).abs() < 1e-12);
    }
}
