//! `exp` eight lanes at a time (AVX2 + FMA), and what is built on it: the SwiGLU gate
//! `silu(g) · u = g · u / (1 + e^−g)` and softmax.
//!
//! A prefill of 128 tokens through a 4 864-wide MLP takes 15 million SiLUs on a 24-layer model;
//! libm's scalar `expf` made them ~8% of the prefill. Here `e^x` is `2^n · p(r)` with
//! `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, and `p` Cephes' degree-7 polynomial (relative error
//! about 1e-7, a couple of units in the last place; the tests bound it against f64). Inputs above
//! 88.37 give `e^88.37`; below −87.33 (where `e^x` is no longer a normal f32) exactly 0, so a
//! softmax of `−∞` scores gives them no weight; NaN stays NaN.
//!
//! [`crate::isa`] picks the intrinsics where it found AVX2 (and FMA); elsewhere the scalar
//! formula runs.

use crate::isa::{isa, Isa};

/// `out[i] = silu(gate[i]) · up[i]` for the common length of the three slices.
pub fn silu_gate(gate: &[f32], up: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: `isa()` found AVX2 and FMA.
        return unsafe { avx2::silu_gate(gate, up, out) };
    }
    silu_gate_scalar(gate, up, out);
}

/// `row` replaced by its softmax (`e^(x − max)`, normalised), the exponentials eight at a time.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    #[cfg(target_arch = "x86_64")]
    let sum = if isa() >= Isa::Avx2 {
        // SAFETY: `isa()` found AVX2 and FMA.
        unsafe { avx2::exp_shifted(row, max) }
    } else {
        exp_shifted_scalar(row, max)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sum = exp_shifted_scalar(row, max);
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `row[i] = e^(row[i] − max)` by libm's `expf`; returns their sum.
fn exp_shifted_scalar(row: &mut [f32], max: f32) -> f32 {
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    sum
}

/// [`silu_gate`] by the scalar formula (libm's `expf`).
pub fn silu_gate_scalar(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `e^x` for the eight lanes of `x`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp(x: __m256) -> __m256 {
        // The range where e^x is a normal f32 (a NaN lane stays NaN: `max`/`min` return
        // their second operand, `x`, when it is NaN); below it, 0.
        let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.33));
        let x = _mm256_min_ps(_mm256_set1_ps(88.37), x);
        let x = _mm256_max_ps(_mm256_set1_ps(-87.33), x);
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
        ));
        // r = x − n·ln 2, with ln 2 split in two so that n·ln2_hi is exact.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        // 2^n as the exponent field of an f32.
        let two_n = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
        _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(two_n)))
    }

    /// [`super::exp_shifted_scalar`] with AVX2: `row[i] = e^(row[i] − max)`, and their sum.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_shifted(row: &mut [f32], max: f32) -> f32 {
        let whole = row.len() / 8 * 8;
        let (shift, mut sums) = (_mm256_set1_ps(max), _mm256_setzero_ps());
        for i in (0..whole).step_by(8) {
            // SAFETY: lanes i..i + 8 are in bounds.
            unsafe {
                let e = exp(_mm256_sub_ps(_mm256_loadu_ps(row.as_ptr().add(i)), shift));
                _mm256_storeu_ps(row.as_mut_ptr().add(i), e);
                sums = _mm256_add_ps(sums, e);
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sums) };
        lanes.iter().sum::<f32>() + super::exp_shifted_scalar(&mut row[whole..], max)
    }

    /// [`super::silu_gate`] with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn silu_gate(gate: &[f32], up: &[f32], out: &mut [f32]) {
        let n = gate.len().min(up.len()).min(out.len());
        let whole = n / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: lanes i..i + 8 are in bounds of the three slices.
            unsafe {
                let g = _mm256_loadu_ps(gate.as_ptr().add(i));
                let u = _mm256_loadu_ps(up.as_ptr().add(i));
                let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), g));
                let silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0), e));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(silu, u));
            }
        }
        super::silu_gate_scalar(&gate[whole..n], &up[whole..n], &mut out[whole..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_matches_f64_within_a_few_ulps() {
        let mut gate: Vec<f32> = (-40_000..40_000).map(|i| i as f32 * 2.5e-3).collect();
        gate.extend([-200.0, -90.0, -87.5, 88.5, 100.0, 1e-30, -1e-30, 0.0, f32::MAX, f32::MIN]);
        // The extremes times 1 (`f32::MAX` times more would overflow).
        let up: Vec<f32> =
            (0..gate.len()).map(|i| if i < 80_000 { 1.0 + (i % 7) as f32 * 0.25 } else { 1.0 }).collect();
        let mut got = vec![f32::NAN; gate.len()];
        silu_gate(&gate, &up, &mut got);
        for ((&g, &u), &v) in gate.iter().zip(&up).zip(&got) {
            let (g64, u64) = (f64::from(g), f64::from(u));
            let want = g64 / (1.0 + (-g64).exp()) * u64;
            // Gates below −87 are clamped there: a result of ~1e-37 instead of a smaller one.
            let tolerance = 4.0 * f64::from(f32::EPSILON) * want.abs() + 1e-35;
            assert!((f64::from(v) - want).abs() <= tolerance, "silu({g}) · {u}: {v} vs {want}");
        }
    }

    #[test]
    fn softmax_matches_f64_and_gives_minus_infinity_no_weight() {
        for n in [1, 7, 8, 9, 100] {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 1.7).collect();
            if n > 1 {
                (row[0], row[n - 1]) = (f32::NEG_INFINITY, -1e30);
            }
            let x: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            softmax_in_place(&mut row);
            let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = x.iter().map(|v| (v - max).exp()).sum();
            for (&got, v) in row.iter().zip(&x) {
                let want = (v - max).exp() / total;
                // `x − max` rounds in f32 (2^-24 of scores up to ~40 moves e^x by ~2e-6 of itself).
                assert!((f64::from(got) - want).abs() <= 1e-5 * want + 1e-9, "{n}: {got} vs {want}");
            }
            if n > 1 {
                assert_eq!((row[0], row[n - 1]), (0.0, 0.0), "-inf and -1e30 get no weight");
            }
        }
    }

    #[test]
    fn a_nan_gate_stays_nan() {
        let gate = [f32::NAN; 11];
        let mut got = [0f32; 11];
        silu_gate(&gate, &[1.0; 11], &mut got);
        assert!(got.iter().all(|v| v.is_nan()));
    }
}
