//! Logit processors: each reshapes the distribution one way, and a [`super::SamplerChain`] runs
//! them in transformers' order (penalties, temperature, top-k, top-p, min-p).
//!
//! Processors work in place on a row of logits; a token is removed by setting its logit to −∞.

/// One step of a sampling chain.
pub trait LogitProcessor: Send + Sync + std::fmt::Debug {
    /// Adjusts `logits` given every token of the sequence so far.
    fn process(&self, logits: &mut [f32], history: &[u32]);

    /// The option that set this processor and its value, as the command line spells it (for
    /// errors: `--temperature 1e-40`).
    fn option(&self) -> String;
}

/// CTRL's repetition penalty, as transformers applies it: a seen token's logit is divided by
/// `penalty` when positive and multiplied by it when negative.
#[derive(Clone, Copy, Debug)]
pub struct RepetitionPenalty(pub f32);

impl LogitProcessor for RepetitionPenalty {
    fn process(&self, logits: &mut [f32], history: &[u32]) {
        for id in distinct(history, logits.len()) {
            let l = &mut logits[id];
            *l = if *l > 0.0 { *l / self.0 } else { *l * self.0 };
        }
    }

    fn option(&self) -> String {
        format!("--repeat-penalty {}", self.0)
    }
}

/// OpenAI's frequency and presence penalties: `logit −= frequency·count + presence·[count > 0]`.
#[derive(Clone, Copy, Debug)]
pub struct FrequencyPresencePenalty {
    /// Subtracted once per occurrence.
    pub frequency: f32,
    /// Subtracted once if the token occurred at all.
    pub presence: f32,
}

impl LogitProcessor for FrequencyPresencePenalty {
    fn process(&self, logits: &mut [f32], history: &[u32]) {
        let mut counts = std::collections::HashMap::<usize, u32>::new();
        for &id in history {
            if (id as usize) < logits.len() {
                *counts.entry(id as usize).or_default() += 1;
            }
        }
        for (id, count) in counts {
            logits[id] -= self.frequency * count as f32 + self.presence;
        }
    }

    fn option(&self) -> String {
        format!("--frequency-penalty {} --presence-penalty {}", self.frequency, self.presence)
    }
}

/// Divides logits by the temperature (> 0). A temperature so small that a quotient overflows
/// is the limit of temperature → 0: every token but the most likely (and any tied with it) is
/// removed, so the draw is greedy.
#[derive(Clone, Copy, Debug)]
pub struct Temperature(pub f32);

impl LogitProcessor for Temperature {
    fn process(&self, logits: &mut [f32], _history: &[u32]) {
        let overflows = logits.iter().any(|&l| l.is_finite() && !(l / self.0).is_finite());
        if !overflows {
            logits.iter_mut().for_each(|l| *l /= self.0);
            return;
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        logits.iter_mut().for_each(|l| *l = if *l == max { 0.0 } else { f32::NEG_INFINITY });
    }

    fn option(&self) -> String {
        format!("--temperature {}", self.0)
    }
}

/// Keeps the `k` largest logits (and any tied with the k-th).
#[derive(Clone, Copy, Debug)]
pub struct TopK(pub usize);

impl LogitProcessor for TopK {
    fn process(&self, logits: &mut [f32], _history: &[u32]) {
        if self.0 == 0 || self.0 >= logits.len() {
            return;
        }
        let mut sorted = logits.to_vec();
        let (_, kth, _) = sorted.select_nth_unstable_by(self.0 - 1, |a, b| b.total_cmp(a));
        let threshold = *kth;
        logits.iter_mut().filter(|l| **l < threshold).for_each(|l| *l = f32::NEG_INFINITY);
    }

    fn option(&self) -> String {
        format!("--top-k {}", self.0)
    }
}

/// Nucleus sampling: keeps the most likely tokens whose probabilities sum to at least `p`
/// (always at least one).
#[derive(Clone, Copy, Debug)]
pub struct TopP(pub f32);

impl LogitProcessor for TopP {
    fn process(&self, logits: &mut [f32], _history: &[u32]) {
        if self.0 >= 1.0 {
            return;
        }
        let probs = softmax(logits);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let mut cumulative = 0.0;
        let mut keep = 0;
        for &i in &order {
            keep += 1;
            cumulative += probs[i];
            if cumulative >= self.0 as f64 {
                break;
            }
        }
        for &i in &order[keep..] {
            logits[i] = f32::NEG_INFINITY;
        }
    }

    fn option(&self) -> String {
        format!("--top-p {}", self.0)
    }
}

/// Min-p: removes tokens whose probability is below `p` times the most likely token's.
#[derive(Clone, Copy, Debug)]
pub struct MinP(pub f32);

impl LogitProcessor for MinP {
    fn process(&self, logits: &mut [f32], _history: &[u32]) {
        let probs = softmax(logits);
        let threshold = probs.iter().copied().fold(0.0, f64::max) * self.0 as f64;
        for (l, p) in logits.iter_mut().zip(probs) {
            if p < threshold {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    fn option(&self) -> String {
        format!("--min-p {}", self.0)
    }
}

/// The distinct in-vocabulary ids of `history`.
fn distinct(history: &[u32], vocab: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = history.iter().map(|&id| id as usize).filter(|&id| id < vocab).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `softmax(logits)` in f64 (−∞ gives probability 0).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let mut probs: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    probs
}
