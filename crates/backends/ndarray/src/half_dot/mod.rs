//! Dot products of 16-bit float weight rows ([`DType::F16`] or [`DType::BF16`], kept as stored)
//! with f32 activation rows: the decode hot loop of 16-bit checkpoints.
//!
//! A decode step reads every weight once, so 16-bit weights halve the bytes per token against
//! widening them to f32 at load. Each weight is widened in registers (F16C's `vcvtph2ps` for
//! f16, a 16-bit shift for bf16) and multiplied with the f32 activation by FMA, so the result
//! is the f32 product of the exact weight values, up to summation order.
//!
//! [`crate::isa`] picks the kernels: AVX-512F (16 lanes), AVX2 + F16C + FMA (8 lanes), or the
//! plain loops here.

use zoo_core::DType;

use crate::isa::{isa, Isa};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod rows8;

/// Which 16-bit float a weight row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// IEEE binary16.
    F16,
    /// bfloat16 (the top half of an f32).
    Bf16,
}

impl Half {
    /// The 16-bit float `dtype` names, if it is one.
    pub fn of(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F16 => Some(Self::F16),
            DType::BF16 => Some(Self::Bf16),
            _ => None,
        }
    }

    /// The value of the little-endian 16-bit float `bits`.
    pub fn widen(self, bits: u16) -> f32 {
        match self {
            Self::F16 => half::f16::from_bits(bits).to_f32(),
            Self::Bf16 => f32::from_bits(u32::from(bits) << 16),
        }
    }

    /// Appends the values of the little-endian 16-bit floats `bytes` to `out` (exactly: every
    /// f16 and bf16 value is an f32 value).
    pub fn widen_into(self, bytes: &[u8], out: &mut Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        if isa() >= Isa::Avx2 {
            // SAFETY: `isa` returns Avx2 or above only where AVX2, FMA and F16C are present.
            return unsafe { avx2::widen_into(self, bytes, out) };
        }
        out.extend(bytes.chunks_exact(2).map(|b| self.widen(u16::from_le_bytes([b[0], b[1]]))));
    }
}

/// `out[j] = w_row(j) · x` for the consecutive weight rows of `weights` (each `x.len()` 16-bit
/// floats of kind `half`), one per element of `out`.
pub fn rows_dot(half: Half, weights: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = 2 * x.len();
    let rows = weights.chunks_exact(row_bytes).zip(out.iter_mut());
    match isa() {
        // SAFETY: `isa` returns Avx512 only where AVX-512F (and AVX2, FMA, F16C) are present.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Vnni => rows.for_each(|(w, o)| *o = unsafe { avx512::dot(half, w, x) }),
        // SAFETY: `isa` returns Avx2 only where AVX2, FMA and F16C are present.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => rows.for_each(|(w, o)| *o = unsafe { avx2::dot(half, w, x) }),
        _ => rows.for_each(|(w, o)| *o = dot(half, w, x)),
    }
}

/// `w · x` in plain Rust, eight partial sums so the products vectorise.
fn dot(half: Half, w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let whole = x.len() / 8 * 8;
    for (wc, xc) in w[..2 * whole].chunks_exact(16).zip(x[..whole].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += half.widen(u16::from_le_bytes([wc[2 * l], wc[2 * l + 1]])) * xc[l];
        }
    }
    tail(half, w, x, whole) + acc.iter().sum::<f32>()
}

/// `Σ w[i]·x[i]` for `i` from `from` to the end (the kernels' remainder).
fn tail(half: Half, w: &[u8], x: &[f32], from: usize) -> f32 {
    (from..x.len()).map(|i| half.widen(u16::from_le_bytes([w[2 * i], w[2 * i + 1]])) * x[i]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights of every kind of value (normals, subnormals, zeros of both signs) as `half` bytes.
    fn weights(half: Half, n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let v = ((i * 37 % 101) as f32 - 50.0) / 17.0 * if i % 29 == 0 { 1e-6 } else { 1.0 };
                let bits = match half {
                    Half::F16 => half::f16::from_f32(v).to_bits(),
                    Half::Bf16 => half::bf16::from_f32(v).to_bits(),
                };
                bits.to_le_bytes()
            })
            .collect()
    }

    /// Every kernel this CPU has gives the f64 dot product of the exact weight values, to f32
    /// summation error, for lengths around each kernel's step.
    #[test]
    fn kernels_match_the_exact_product() {
        for half in [Half::F16, Half::Bf16] {
            for k in [1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 896] {
                let rows = 3;
                let w = weights(half, rows * k);
                let x: Vec<f32> = (0..k).map(|i| ((i * 13 % 23) as f32 - 11.0) / 7.0).collect();
                let want: Vec<f64> = w
                    .chunks_exact(2 * k)
                    .map(|row| {
                        let mut values = Vec::new();
                        half.widen_into(row, &mut values);
                        values.iter().zip(&x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
                    })
                    .collect();
                let scale = |row: &[u8]| {
                    let mut values = Vec::new();
                    half.widen_into(row, &mut values);
                    values.iter().zip(&x).map(|(a, b)| f64::from((a * b).abs())).sum::<f64>()
                };
                let mut got = vec![0f32; rows];
                for path in kernels() {
                    path(half, &w, &x, &mut got);
                    for (j, (g, e)) in got.iter().zip(&want).enumerate() {
                        let bound = 1e-6 * scale(&w[j * 2 * k..(j + 1) * 2 * k]).max(1.0);
                        assert!((f64::from(*g) - e).abs() <= bound, "{half:?} k={k} row {j}: {g} vs {e}");
                    }
                }
            }
        }
    }

    /// Widening a run of values (the GEMM tiles' path) gives each value `widen` gives, for every
    /// 16-bit pattern, at every length around the vector step.
    #[test]
    fn widening_runs_matches_widening_each_value() {
        let all: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        for half in [Half::F16, Half::Bf16] {
            for len in [0, 1, 7, 8, 9, 17, all.len() / 2] {
                let bytes = &all[..2 * len];
                let mut got = vec![1.5];
                half.widen_into(bytes, &mut got);
                assert_eq!(got.len(), len + 1, "{half:?}: appends, keeping what was there");
                for (i, (g, b)) in got[1..].iter().zip(bytes.chunks_exact(2)).enumerate() {
                    let want = half.widen(u16::from_le_bytes([b[0], b[1]]));
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "{half:?} {i}: {g} vs {want}"
                    );
                }
            }
        }
    }

    type Kernel = fn(Half, &[u8], &[f32], &mut [f32]);

    /// The portable loops and every x86 kernel this CPU can run.
    fn kernels() -> Vec<Kernel> {
        let mut paths: Vec<Kernel> = vec![|h, w, x, out| {
            for (row, o) in w.chunks_exact(2 * x.len()).zip(out.iter_mut()) {
                *o = dot(h, row, x);
            }
        }];
        #[cfg(target_arch = "x86_64")]
        {
            if isa() >= Isa::Avx2 {
                // SAFETY: AVX2, FMA and F16C are present.
                paths.push(|h, w, x, out| {
                    for (row, o) in w.chunks_exact(2 * x.len()).zip(out.iter_mut()) {
                        *o = unsafe { avx2::dot(h, row, x) };
                    }
                });
            }
            if isa() >= Isa::Avx512 {
                // SAFETY: AVX-512F is present.
                paths.push(|h, w, x, out| {
                    for (row, o) in w.chunks_exact(2 * x.len()).zip(out.iter_mut()) {
                        *o = unsafe { avx512::dot(h, row, x) };
                    }
                });
            }
        }
        paths
    }
}
