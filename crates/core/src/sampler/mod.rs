//! Choosing the next token from a row of logits.
//!
//! A [`SamplerChain`] runs [`processors`] in transformers' order (repetition penalty,
//! frequency/presence penalties, temperature, top-k, top-p, min-p) and then picks: the most
//! likely token at temperature 0, else a draw from the remaining distribution.
//!
//! The RNG is ChaCha8 (`rand_chacha`) seeded from `--seed`; each draw consumes one `u64` and
//! maps its top 53 bits to [0, 1). The stream is fixed by the algorithm, so a seed gives the same
//! tokens on every platform, run and CPU backend (given the same logits).

pub mod processors;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{Error, Result};
use processors::{FrequencyPresencePenalty, LogitProcessor, MinP, RepetitionPenalty, Temperature, TopK, TopP};

/// Picks the next token.
pub trait Sampler: Send {
    /// Chooses a token id from `logits` (one entry per vocabulary id). `history` holds every
    /// token of the sequence so far (prompt and generated), for penalties.
    fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32>;

    /// Whether [`Sampler::sample`] is exactly [`Greedy`]'s pick (largest logit, first on ties,
    /// history ignored): then generation lets the backend pick (`Backend::argmax_rows`, on the
    /// device for GPU backends) instead of reading the logits back.
    fn is_greedy(&self) -> bool {
        false
    }
}

/// Sampling settings; the defaults change nothing and pick greedily.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy; otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens with this much probability (1 = off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = off).
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    pub repeat_penalty: f32,
    /// Frequency penalty (0 = off).
    pub frequency_penalty: f32,
    /// Presence penalty (0 = off).
    pub presence_penalty: f32,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Checks ranges and builds the sampler.
    pub fn build(&self) -> Result<SamplerChain> {
        let bad = |what: String| Err(Error::Sampling(what));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature must be ≥ 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top-p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min-p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad(format!("repeat penalty must be positive, got {}", self.repeat_penalty));
        }
        if !self.frequency_penalty.is_finite() || !self.presence_penalty.is_finite() {
            return bad("frequency and presence penalties must be finite".into());
        }
        let mut chain: Vec<Box<dyn LogitProcessor>> = Vec::new();
        if self.repeat_penalty != 1.0 {
            chain.push(Box::new(RepetitionPenalty(self.repeat_penalty)));
        }
        if self.frequency_penalty != 0.0 || self.presence_penalty != 0.0 {
            chain.push(Box::new(FrequencyPresencePenalty {
                frequency: self.frequency_penalty,
                presence: self.presence_penalty,
            }));
        }
        let greedy = self.temperature == 0.0;
        if !greedy {
            chain.push(Box::new(Temperature(self.temperature)));
            if self.top_k > 0 {
                chain.push(Box::new(TopK(self.top_k)));
            }
            if self.top_p < 1.0 {
                chain.push(Box::new(TopP(self.top_p)));
            }
            if self.min_p > 0.0 {
                chain.push(Box::new(MinP(self.min_p)));
            }
        }
        Ok(SamplerChain { processors: chain, rng: (!greedy).then(|| ChaCha8Rng::seed_from_u64(self.seed)) })
    }
}

/// Logit processors followed by a greedy pick (no RNG) or a seeded draw.
#[derive(Debug)]
pub struct SamplerChain {
    processors: Vec<Box<dyn LogitProcessor>>,
    rng: Option<ChaCha8Rng>,
}

impl SamplerChain {
    /// The processors, in the order they run.
    pub fn processors(&self) -> &[Box<dyn LogitProcessor>] {
        &self.processors
    }
}

impl Sampler for SamplerChain {
    fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        check_logits(logits)?;
        let mut logits = logits.to_vec();
        for p in &self.processors {
            p.process(&mut logits, history);
            if let Some(problem) = logits_problem(&logits) {
                return Err(Error::Sampling(format!("{} leaves no token to draw: {problem}", p.option())));
            }
        }
        match &mut self.rng {
            None => argmax(&logits).ok_or_else(|| Error::Sampling("empty logits".into())),
            Some(rng) => Ok(draw(&processors::softmax(&logits), unit_f64(rng))),
        }
    }

    fn is_greedy(&self) -> bool {
        self.rng.is_none() && self.processors.is_empty()
    }
}

/// Always the most likely token (the first one on ties, as `torch.argmax`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Greedy;

impl Sampler for Greedy {
    fn sample(&mut self, logits: &[f32], _history: &[u32]) -> Result<u32> {
        greedy_pick(logits)
    }

    fn is_greedy(&self) -> bool {
        true
    }
}

/// [`Greedy`]'s pick of each row of `logits: [rows, vocab]`, read back from `backend` (what
/// [`Backend::argmax_rows`](crate::Backend::argmax_rows) does unless a backend picks on the device).
pub fn greedy_rows_on_host<B: crate::Backend>(backend: &B, logits: &B::Tensor) -> Result<Vec<u32>> {
    use crate::TensorShape;
    let vocab = logits.shape().last().copied().unwrap_or(0);
    if vocab == 0 {
        return Err(Error::Sampling("empty logits".into()));
    }
    greedy_rows(&backend.to_host(logits)?, vocab)
}

/// [`Greedy`]'s pick of each row of `vocab` logits in `logits` (a backend whose logits live in
/// host memory passes them without a copy).
pub fn greedy_rows(logits: &[f32], vocab: usize) -> Result<Vec<u32>> {
    if vocab == 0 {
        return Err(Error::Sampling("empty logits".into()));
    }
    logits.chunks(vocab).map(greedy_pick).collect()
}

/// The index of the largest logit (first on ties), in one pass that also watches for what
/// [`check_logits`] rejects; only a row it rejects is scanned again, for the error's words.
fn greedy_pick(logits: &[f32]) -> Result<u32> {
    let (mut best, mut best_value, mut unusable) = (0usize, f32::NEG_INFINITY, false);
    for (i, &v) in logits.iter().enumerate() {
        unusable |= v.is_nan() || v == f32::INFINITY;
        if v > best_value {
            (best, best_value) = (i, v);
        }
    }
    if unusable || best_value == f32::NEG_INFINITY {
        check_logits(logits)?;
    }
    Ok(best as u32)
}

/// Index of the largest value (first on ties); `None` when empty.
pub fn argmax(values: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
}

/// Rejects logits no distribution can be made of: empty, NaN, +∞, or all −∞.
fn check_logits(logits: &[f32]) -> Result<()> {
    logits_problem(logits).map_or(Ok(()), |problem| Err(Error::Sampling(problem)))
}

/// What makes `logits` unusable, if anything (see [`check_logits`]).
fn logits_problem(logits: &[f32]) -> Option<String> {
    if logits.is_empty() {
        return Some("empty logits".into());
    }
    if let Some(i) = logits.iter().position(|v| v.is_nan()) {
        return Some(format!("logit of token {i} is NaN"));
    }
    if let Some(i) = logits.iter().position(|&v| v == f32::INFINITY) {
        return Some(format!("logit of token {i} is +inf"));
    }
    if logits.iter().all(|&v| v == f32::NEG_INFINITY) {
        return Some("every logit is -inf".into());
    }
    None
}

/// A uniform number in [0, 1) from the top 53 bits of one `u64`.
fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The first index whose cumulative probability exceeds `u` (the last possible one if rounding
/// leaves `u` above the total).
fn draw(probs: &[f64], u: f64) -> u32 {
    let mut cumulative = 0.0;
    let mut last_possible = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last_possible = i;
        }
        cumulative += p;
        if u < cumulative {
            return i as u32;
        }
    }
    last_possible as u32
}

#[cfg(test)]
mod tests;
