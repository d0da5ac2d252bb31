//! Choosing the next token from a row of logits.
//!
//! The RNG is ChaCha8 (`rand_chacha`) seeded from `--seed`: its stream is fixed by the algorithm,
//! so a seed gives the same tokens on every platform, run and CPU backend.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{Error, Result};

/// Picks the next token.
pub trait Sampler: Send {
    /// Chooses a token id from `logits` (one entry per vocabulary id). `history` holds every
    /// token of the sequence so far (prompt and generated), for penalties.
    fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32>;
}

/// Always the most likely token (the first one on ties, as `torch.argmax`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Greedy;

impl Sampler for Greedy {
    fn sample(&mut self, logits: &[f32], _history: &[u32]) -> Result<u32> {
        check_finite(logits)?;
        argmax(logits).ok_or_else(|| Error::Sampling("empty logits".into()))
    }
}

/// Samples from `softmax(logits / temperature)`.
#[derive(Clone, Debug)]
pub struct Temperature {
    temperature: f32,
    rng: ChaCha8Rng,
}

impl Temperature {
    /// A sampler at `temperature` (> 0) with a seeded RNG.
    pub fn new(temperature: f32, seed: u64) -> Result<Self> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(Error::Sampling(format!("temperature must be positive, got {temperature}")));
        }
        Ok(Self { temperature, rng: ChaCha8Rng::seed_from_u64(seed) })
    }
}

impl Sampler for Temperature {
    fn sample(&mut self, logits: &[f32], _history: &[u32]) -> Result<u32> {
        check_finite(logits)?;
        let probs = softmax(logits, self.temperature);
        let u = unit_f64(&mut self.rng);
        Ok(pick(&probs, u))
    }
}

/// The sampler for the usual command-line settings: greedy at temperature 0, else temperature.
pub fn from_temperature(temperature: f32, seed: u64) -> Result<Box<dyn Sampler>> {
    if temperature == 0.0 {
        Ok(Box::new(Greedy))
    } else {
        Ok(Box::new(Temperature::new(temperature, seed)?))
    }
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

fn check_finite(logits: &[f32]) -> Result<()> {
    if let Some(i) = logits.iter().position(|v| v.is_nan()) {
        return Err(Error::Sampling(format!("logit {i} is NaN")));
    }
    if logits.iter().all(|v| *v == f32::NEG_INFINITY) {
        return Err(Error::Sampling("every logit is -inf".into()));
    }
    Ok(())
}

/// `softmax(logits / t)` in f64.
fn softmax(logits: &[f32], temperature: f32) -> Vec<f64> {
    let t = temperature as f64;
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let mut probs: Vec<f64> = logits.iter().map(|&v| ((v as f64 - max) / t).exp()).collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    probs
}

/// A uniform number in [0, 1) with 53 random bits.
fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The first index whose cumulative probability exceeds `u`.
fn pick(probs: &[f64], u: f64) -> u32 {
    let mut cumulative = 0.0;
    let mut last_nonzero = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last_nonzero = i;
        }
        cumulative += p;
        if u < cumulative {
            return i as u32;
        }
    }
    last_nonzero as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum() {
        assert_eq!(Greedy.sample(&[0.0, 3.0, 3.0, -1.0], &[]).unwrap(), 1);
    }

    #[test]
    fn nan_logits_are_an_error() {
        let err = Greedy.sample(&[0.0, f32::NAN], &[]).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
    }

    #[test]
    fn temperature_sampling_is_reproducible_and_follows_probabilities() {
        let logits = [0.0f32, (3.0f32).ln(), f32::NEG_INFINITY];
        let draw = |seed| {
            let mut s = Temperature::new(1.0, seed).unwrap();
            (0..4000).map(|_| s.sample(&logits, &[]).unwrap()).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert!(!a.contains(&2), "a -inf logit was sampled");
        let ones = a.iter().filter(|&&t| t == 1).count() as f64 / a.len() as f64;
        assert!((ones - 0.75).abs() < 0.03, "P(1) = {ones}, expected 0.75");
    }

    #[test]
    fn non_positive_temperature_is_rejected() {
        assert!(Temperature::new(-1.0, 0).is_err());
        assert!(from_temperature(0.0, 0).is_ok());
    }
}
