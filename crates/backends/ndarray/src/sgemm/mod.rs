//! zoo's own f32 GEMM for long inputs (prefill): `out = x · wᵀ` with `x` `[n, k]` activations
//! and `w` `[cols, k]` weight rows, both row-major, on AVX-512F.
//!
//! The roles are the transpose of the textbook kernel: the micro-kernel ([`avx512::block`])
//! holds a block of [`MR`] weight rows by [`NR`] tokens in registers, loads the tokens as
//! vectors from the activations packed once per call ([`PackedX`]) and broadcasts each weight
//! from its row as stored. The weights, the large operand that every block of output features
//! reads for itself, are thus never packed or transposed: f32 weights are read in place and
//! compressed ones from the row-major tile they are dequantised into. The price is an output
//! in `[feature][token]` order, which [`gemm`] transposes once at the end (`n · cols`
//! moves against `n · cols · k` FMAs).
//!
//! Blocking: the inner dimension goes by slices of [`KC`] steps; within a slice each token
//! panel (`KC · NR` floats, 32 KiB) stays in L1 while every block of weight rows passes over
//! it, and the slice of the weight tile (`cols · KC` floats) stays in L2 across the panels.
//!
//! [`gemm`] runs blocks of [`COLS`] weight rows in parallel (rayon).
//!
//! [`available`] says whether to use it ([`crate::isa`] at [`Isa::Avx512`] or above); other
//! CPUs keep matrixmultiply's GEMM (`crate::matmul::gemm_serial`).

#[cfg(target_arch = "x86_64")]
mod avx512;
mod pack;

use std::borrow::Cow;
use std::ops::Range;

use rayon::prelude::*;

use crate::isa::{isa, Isa};

pub use pack::PackedX;

/// Tokens per micro-kernel block (two 16-lane vectors).
pub const NR: usize = 32;
/// Weight rows per micro-kernel block (24 accumulators).
pub const MR: usize = 12;
/// Steps of the inner dimension per slice.
pub const KC: usize = 256;

/// Whether [`gemm`] runs here (and the GEMM paths should use it).
pub fn available() -> bool {
    cfg!(target_arch = "x86_64") && isa() >= Isa::Avx512
}

/// Weight rows (output features) per parallel task.
pub const COLS: usize = 64;
/// Output rows per parallel task of the final transposition.
const TRANSPOSE_ROWS: usize = 16;

/// `out = x · wᵀ` (`out` `[x.n, m]`, row-major) for `m` weight rows of `x.k` elements, in
/// parallel by blocks of [`COLS`] rows: `tile(rows)` gives the rows `rows` of `w` as f32,
/// row-major (borrowed from f32 weights, or dequantised).
///
/// # Panics
/// If the CPU lacks AVX-512F or a length does not match.
pub fn gemm<'w>(x: &PackedX, m: usize, out: &mut [f32], tile: impl Fn(Range<usize>) -> Cow<'w, [f32]> + Sync) {
    let (n, k) = (x.n, x.k);
    assert_eq!(out.len(), n * m, "out is [n, m]");
    if out.is_empty() {
        return;
    }
    // Each block's product as `[feature][token]`, then all of them transposed into `out` by
    // groups of rows (reading each block's tokens in runs, writing each row's features in runs).
    let parts: Vec<Vec<f32>> = (0..m.div_ceil(COLS))
        .into_par_iter()
        .map(|b| {
            let rows = b * COLS..m.min((b + 1) * COLS);
            let w = tile(rows.clone());
            assert_eq!(w.len(), rows.len() * k, "a tile is [rows, k]");
            let mut part = vec![0f32; rows.len() * n];
            multiply_transposed(x, &w, rows.len(), &mut part);
            part
        })
        .collect();
    out.par_chunks_mut(TRANSPOSE_ROWS * m).enumerate().for_each(|(chunk, dst)| {
        let (first_row, rows) = (chunk * TRANSPOSE_ROWS, dst.len() / m);
        for (b, part) in parts.iter().enumerate() {
            for (j, tokens) in part.chunks_exact(n).enumerate() {
                let column = b * COLS + j;
                for (row, &value) in tokens[first_row..first_row + rows].iter().enumerate() {
                    dst[row * m + column] = value;
                }
            }
        }
    });
}

/// `out_t += w · xᵀ`, `out_t` `[cols, x.n]`.
#[cfg(target_arch = "x86_64")]
fn multiply_transposed(x: &PackedX, w: &[f32], cols: usize, out_t: &mut [f32]) {
    assert!(crate::isa::detected() >= Isa::Avx512, "the AVX-512 GEMM on a CPU without AVX-512F");
    let (n, k) = (x.n, x.k);
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        for i in 0..x.panels() {
            let panel = &x.panel(i)[k0 * NR..];
            let tokens = NR.min(n - i * NR);
            for j0 in (0..cols).step_by(MR) {
                let rows = MR.min(cols - j0);
                // SAFETY: AVX-512F is present (asserted above). Rows `j0..j0 + rows` of `w`
                // hold elements `k0..k0 + kc`; the panel holds `kc` steps of `NR` from `k0`;
                // `out_t`'s rows `j0..j0 + rows` hold tokens `i·NR..i·NR + tokens`.
                unsafe {
                    avx512::block(&avx512::Block {
                        kc,
                        w: w.as_ptr().add(j0 * k + k0),
                        ldw: k,
                        xt: panel.as_ptr(),
                        c: out_t.as_mut_ptr().add(j0 * n + i * NR),
                        ldc: n,
                        rows,
                        tokens,
                    })
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn multiply_transposed(_: &PackedX, _: &[f32], _: usize, _: &mut [f32]) {
    panic!("the AVX-512 GEMM on a CPU without AVX-512F");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x · wᵀ` in f64, and the sum of the products' magnitudes (the error scale).
    fn reference(x: &[f32], w: &[f32], n: usize, k: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
        let mut want = vec![0f64; n * cols];
        let mut scale = vec![0f64; n * cols];
        for i in 0..n {
            for j in 0..cols {
                for p in 0..k {
                    let product = f64::from(x[i * k + p]) * f64::from(w[j * k + p]);
                    want[i * cols + j] += product;
                    scale[i * cols + j] += product.abs();
                }
            }
        }
        (want, scale)
    }

    #[test]
    fn matches_the_f64_product_on_odd_shapes() {
        if crate::isa::detected() < Isa::Avx512 {
            return; // this CPU has no AVX-512F
        }
        for n in (1..=40).chain([64, 65, 100]) {
            for k in [1, 7, 33, 64, 250, 300, 513] {
                for cols in [1, 11, 12, 13, 17, 32, 33, 130] {
                    let x: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                    let w: Vec<f32> = (0..cols * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
                    let mut got = vec![f32::NAN; n * cols];
                    gemm(&PackedX::new(&x, n, k), cols, &mut got, |r| Cow::Borrowed(&w[r.start * k..r.end * k]));
                    let (want, scale) = reference(&x, &w, n, k, cols);
                    for (at, ((&g, &e), &s)) in got.iter().zip(&want).zip(&scale).enumerate() {
                        let tolerance = 1e-6 * s.max(1.0);
                        assert!((f64::from(g) - e).abs() <= tolerance, "{g} vs {e} at {at} of {:?}", (n, k, cols));
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_inner_dimension_gives_zeros() {
        if crate::isa::detected() < Isa::Avx512 {
            return;
        }
        let mut got = vec![f32::NAN; 3 * 5];
        gemm(&PackedX::new(&[], 3, 0), 5, &mut got, |_| Cow::Borrowed(&[]));
        assert!(got.iter().all(|&v| v == 0.0));
    }
}
