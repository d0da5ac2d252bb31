//! RoPE scaling: the inverse frequencies of the scaled rotary embeddings that transformers
//! implements (`modeling_rope_utils.py`: `linear`, `llama3`, `yarn`), and llama.cpp's
//! per-dimension frequency factors (a GGUF's `rope_freqs.weight`, which divide the frequencies).
//!
//! Each variant is computed once at load into a [`RopeScaling`] (the frequencies and the factor
//! YaRN applies to `cos` and `sin`) that [`crate::RopeSpec::angles`] uses instead of
//! `1 / theta^(2i/d)`; backends see only the finished frequencies. Arithmetic follows the
//! reference: scalars in f64 (Python floats), per-frequency values in f32 (torch tensors).

use std::sync::Arc;

/// The finished frequencies of a scaled RoPE.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeScaling {
    /// `head_dim / 2` inverse frequencies.
    pub inv_freq: Arc<[f32]>,
    /// Multiplier of `cos` and `sin` (transformers' `attention_scaling`; 1 but for YaRN).
    pub attention_factor: f32,
}

/// A RoPE type of transformers' `rope_parameters` (`rope_scaling` in 4.x configs), with its
/// parameters under their config names.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeType {
    /// `1 / theta^(2i/d)`.
    Default,
    /// Position interpolation: every frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length of pretraining.
        original_max_position_embeddings: f64,
    },
    /// YaRN: interpolation blended with extrapolation by a ramp over the dimensions, and an
    /// attention factor on `cos`/`sin`.
    Yarn(Yarn),
}

/// YaRN's parameters (`_compute_yarn_parameters`).
#[derive(Clone, Debug, PartialEq)]
pub struct Yarn {
    /// Context extension factor.
    pub factor: f64,
    /// The context length of pretraining.
    pub original_max_position_embeddings: f64,
    /// Multiplier of `cos`/`sin`; `None`: from `factor` (and `mscale`, `mscale_all_dim`).
    pub attention_factor: Option<f64>,
    /// Rotations above which dimensions extrapolate (default 32).
    pub beta_fast: f64,
    /// Rotations below which dimensions interpolate (default 1).
    pub beta_slow: f64,
    /// DeepSeek's numerator of the attention factor.
    pub mscale: Option<f64>,
    /// DeepSeek's denominator of the attention factor.
    pub mscale_all_dim: Option<f64>,
    /// Whether the ramp's ends are rounded to whole dimensions (default true).
    pub truncate: bool,
}

/// `1 / theta^(2i/d)` for `i < d/2`, in f32 as transformers computes it.
pub fn default_inv_freq(head_dim: usize, theta: f32) -> Vec<f32> {
    (0..head_dim / 2).map(|i| 1.0 / pos_freq(head_dim, theta, i)).collect()
}

/// `theta^(2i/d)`, the wavelength over 2π of dimension pair `i`.
fn pos_freq(head_dim: usize, theta: f32, i: usize) -> f32 {
    (theta as f64).powf((2 * i) as f64 / head_dim as f64) as f32
}

impl RopeType {
    /// The scaled frequencies for `head_dim` channels with base `theta`, each then divided by
    /// its entry of `freq_factors` (GGUF `rope_freqs`) when given. `None` for an unscaled RoPE
    /// without factors, which [`crate::RopeSpec`] computes itself.
    pub fn scaling(&self, head_dim: usize, theta: f32, freq_factors: Option<&[f32]>) -> Option<RopeScaling> {
        let base = default_inv_freq(head_dim, theta);
        let (mut inv_freq, attention_factor) = match self {
            RopeType::Default if freq_factors.is_none() => return None,
            RopeType::Default => (base, 1.0),
            RopeType::Linear { factor } => (base.iter().map(|f| f / *factor as f32).collect(), 1.0),
            RopeType::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let old = *original_max_position_embeddings;
                let (low_wavelen, high_wavelen) = ((old / low_freq_factor) as f32, (old / high_freq_factor) as f32);
                let (factor, low, span) =
                    (*factor as f32, *low_freq_factor as f32, (high_freq_factor - low_freq_factor) as f32);
                let scaled = base.iter().map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let llama = if wavelen > low_wavelen { f / factor } else { f };
                    let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                    if medium {
                        let smooth = (old as f32 / wavelen - low) / span;
                        (1.0 - smooth) * llama / factor + smooth * llama
                    } else {
                        llama
                    }
                });
                (scaled.collect(), 1.0)
            }
            RopeType::Yarn(yarn) => yarn.frequencies(head_dim, theta, &base),
        };
        if let Some(factors) = freq_factors {
            for (f, k) in inv_freq.iter_mut().zip(factors) {
                *f /= k;
            }
        }
        Some(RopeScaling { inv_freq: inv_freq.into(), attention_factor })
    }
}

impl Yarn {
    /// YaRN extending a pretraining context of `original_max_position_embeddings` by `factor`,
    /// with transformers' defaults for the rest: the attention factor from `factor`, the ramp
    /// between 32 and 1 rotations, its ends truncated.
    pub fn new(factor: f64, original_max_position_embeddings: f64) -> Self {
        Self {
            factor,
            original_max_position_embeddings,
            attention_factor: None,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: None,
            mscale_all_dim: None,
            truncate: true,
        }
    }

    /// `(inv_freq, attention_factor)` from the unscaled frequencies `base`.
    fn frequencies(&self, head_dim: usize, theta: f32, base: &[f32]) -> (Vec<f32>, f32) {
        let mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
        let attention_factor = match (self.attention_factor, self.mscale, self.mscale_all_dim) {
            (Some(a), _, _) => a,
            (None, Some(m), Some(all)) if m != 0.0 && all != 0.0 => mscale(self.factor, m) / mscale(self.factor, all),
            _ => mscale(self.factor, 1.0),
        };
        let (dim, log_theta) = (head_dim as f64, (theta as f64).ln());
        let original = self.original_max_position_embeddings;
        let correction =
            |rotations: f64| dim * (original / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * log_theta);
        let (mut low, mut high) = (correction(self.beta_fast), correction(self.beta_slow));
        if self.truncate {
            (low, high) = (low.floor(), high.ceil());
        }
        let (low, mut high) = (low.max(0.0), high.min(dim - 1.0));
        if low == high {
            high += 0.001; // the reference's guard against a zero-width ramp
        }
        let (low32, width) = (low as f32, (high - low) as f32);
        let factor = self.factor as f32;
        let inv_freq = base
            .iter()
            .enumerate()
            .map(|(i, &extrapolation)| {
                let ramp = ((i as f32 - low32) / width).clamp(0.0, 1.0);
                let extrapolation_factor = 1.0 - ramp;
                // 1 / (factor · theta^(2i/d)), as the reference divides by the product.
                let interpolation = 1.0 / (factor * pos_freq(head_dim, theta, i));
                interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
            })
            .collect();
        (inv_freq, attention_factor as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_without_factors_is_unscaled() {
        assert_eq!(RopeType::Default.scaling(8, 1e4, None), None);
        let with = RopeType::Default.scaling(4, 1e4, Some(&[1.0, 4.0])).unwrap();
        assert_eq!(&with.inv_freq[..], &[1.0, 0.01 / 4.0]);
    }

    #[test]
    fn linear_divides_every_frequency() {
        let s = RopeType::Linear { factor: 2.0 }.scaling(4, 1e4, None).unwrap();
        assert_eq!((&s.inv_freq[..], s.attention_factor), (&[0.5, 0.005][..], 1.0));
    }

    #[test]
    fn llama3_keeps_high_and_scales_low_frequencies() {
        let t = RopeType::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        let base = default_inv_freq(128, 5e5);
        let s = t.scaling(128, 5e5, None).unwrap();
        assert_eq!(s.inv_freq[0], base[0], "wavelength 2π: kept");
        assert_eq!(s.inv_freq[63], base[63] / 8.0, "longest wavelength: divided by the factor");
        let medium = (0..64).filter(|&i| s.inv_freq[i] != base[i] && s.inv_freq[i] != base[i] / 8.0).count();
        assert!(medium > 0, "a ramp between the two");
    }

    #[test]
    fn yarn_attention_factor_follows_the_paper() {
        let yarn = Yarn::new(4.0, 4096.0);
        let s = RopeType::Yarn(yarn).scaling(64, 1e4, None).unwrap();
        assert!((s.attention_factor - (0.1 * 4f32.ln() + 1.0)).abs() < 1e-6);
        let base = default_inv_freq(64, 1e4);
        assert_eq!(s.inv_freq[0], base[0], "fast dimensions extrapolate");
        assert!((s.inv_freq[31] - base[31] / 4.0).abs() <= f32::EPSILON * base[31], "slow ones interpolate");
    }
}
