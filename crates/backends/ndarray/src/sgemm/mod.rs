//! zoo's own f32 GEMM for long inputs (prefill): `out = x · wᵀ` with `x` `[n, k]` activations
//! and `w` `[cols, k]` weight rows, both row-major, on AVX-512F.
//!
//! The roles are the transpose of the textbook kernel: the micro-kernel ([`avx512::block`])
//! holds a block of [`MR`] weight rows by [`NR`] tokens in registers, loads the tokens as
//! vectors from the activations packed once per call ([`PackedX`]) and broadcasts each weight
//! from its row as stored. The weights, the large operand that every block of output features
//! reads for itself, are thus never packed or transposed: f32 weights are read in place and
//! compressed ones from the row-major tile they are dequantised into. The price is an output
//! in `[feature][token]` order, which [`multiply`] transposes once at the end (`n · cols`
//! moves against `n · cols · k` FMAs).
//!
//! Blocking: the inner dimension goes by slices of [`KC`] steps; within a slice each token
//! panel (`KC · NR` floats, 32 KiB) stays in L1 while every block of weight rows passes over
//! it, and the slice of the weight tile (`cols · KC` floats) stays in L2 across the panels.
//!
//! [`available`] says whether to use it ([`crate::isa`] at [`Isa::Avx512`] or above); other
//! CPUs keep matrixmultiply's GEMM (`crate::matmul::gemm_serial`).

#[cfg(target_arch = "x86_64")]
mod avx512;
mod pack;

use std::cell::RefCell;

use crate::isa::{isa, Isa};

pub use pack::PackedX;

/// Tokens per micro-kernel block (two 16-lane vectors).
pub const NR: usize = 32;
/// Weight rows per micro-kernel block (24 accumulators).
pub const MR: usize = 12;
/// Steps of the inner dimension per slice.
pub const KC: usize = 256;

/// Whether [`multiply`] runs here (and the GEMM paths should use it).
pub fn available() -> bool {
    cfg!(target_arch = "x86_64") && isa() >= Isa::Avx512
}

thread_local! {
    /// Each thread's `[cols, n]` product, before [`multiply`] transposes it.
    static TRANSPOSED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out = x · wᵀ` (`out` `[x.n, cols]`, row-major) for the `cols` weight rows `w` (`[cols, x.k]`,
/// row-major), on the calling thread.
///
/// # Panics
/// If the CPU lacks AVX-512F or a length does not match.
pub fn multiply(x: &PackedX, w: &[f32], cols: usize, out: &mut [f32]) {
    let (n, k) = (x.n, x.k);
    assert_eq!(w.len(), cols * k, "w is [cols, k]");
    assert_eq!(out.len(), n * cols, "out is [n, cols]");
    TRANSPOSED.with(|cell| {
        let mut t = cell.borrow_mut();
        t.clear();
        t.resize(cols * n, 0.0);
        multiply_transposed(x, w, cols, &mut t);
        for (i, row) in out.chunks_exact_mut(cols).enumerate() {
            for (j, o) in row.iter_mut().enumerate() {
                *o = t[j * n + i];
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
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        for n in (1..=40).chain([64, 65, 100]) {
            for k in [1, 7, 33, 64, 250, 300, 513] {
                for cols in [1, 11, 12, 13, 17, 32, 33, 130] {
                    let x: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                    let w: Vec<f32> = (0..cols * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
                    let mut got = vec![f32::NAN; n * cols];
                    multiply(&PackedX::new(&x, n, k), &w, cols, &mut got);
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
        multiply(&PackedX::new(&[], 3, 0), &[], 5, &mut got);
        assert!(got.iter().all(|&v| v == 0.0));
    }
}
