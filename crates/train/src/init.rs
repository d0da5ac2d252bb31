//! Initial weights: each parameter drawn as its family says ([`Init`]), from `--seed` and the
//! parameter's position alone, as an in-memory weight source the model loads from.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use zoo_core::{MemoryWeights, WeightView};

use crate::error::Result;
use crate::family::{Init, ParamSpec};

/// Weights of `params` drawn from `seed`.
pub fn initial_weights(params: &[ParamSpec], seed: u64) -> Result<MemoryWeights> {
    let mut weights = MemoryWeights::new("initial weights");
    for (index, spec) in params.iter().enumerate() {
        let count = spec.shape.iter().product::<usize>();
        let values = match spec.init {
            Init::Zeros => vec![0.0; count],
            Init::Ones => vec![1.0; count],
            Init::Normal(std) => normal(seed, index as u64, count, std),
        };
        weights.insert(WeightView::from_f32(spec.name.clone(), spec.shape.clone(), &values)?);
    }
    Ok(weights)
}

/// `count` draws of N(0, std²) (Box–Muller over ChaCha8 stream `stream`).
fn normal(seed: u64, stream: u64, count: usize, std: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut uniform = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let mut out = Vec::with_capacity(count + 1);
    while out.len() < count {
        let (u1, u2) = (uniform(), uniform());
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        out.push((radius * angle.cos()) as f32 * std);
        out.push((radius * angle.sin()) as f32 * std);
    }
    out.truncate(count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_have_the_asked_spread_and_repeat_per_seed() {
        let x = normal(7, 3, 20_000, 0.5);
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / x.len() as f32;
        assert!(mean.abs() < 0.02 && (var.sqrt() - 0.5).abs() < 0.02, "mean {mean}, std {}", var.sqrt());
        assert_eq!(x, normal(7, 3, 20_000, 0.5));
        assert_ne!(x[..10], normal(8, 3, 10, 0.5)[..]);
    }
}
