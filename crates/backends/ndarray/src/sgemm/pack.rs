//! The activations in the layout the micro-kernel reads: panels of [`NR`] tokens, each panel
//! inner-dimension-major (for every step `p`, the `NR` tokens' elements `p` side by side), the
//! last panel padded with zero tokens. Packed once per `linear` and shared by every block of
//! weight rows, so its cost (one pass over the activations) is spread over the whole product.

use rayon::prelude::*;

use super::NR;

/// Steps per group of the packing loop (16 steps of [`NR`] tokens: 2 KiB).
const STEPS: usize = 16;

/// `x` (`[n, k]`, row-major) packed into panels of [`NR`] tokens.
pub struct PackedX {
    /// `panels · k · NR` elements: panel `i`'s step `p`, token `t` at `(i · k + p) · NR + t`.
    data: Vec<f32>,
    /// Tokens (rows of `x`).
    pub n: usize,
    /// The inner dimension (columns of `x`).
    pub k: usize,
}

impl PackedX {
    /// Packs `x` (`n` rows of `k`), the panels in parallel.
    pub fn new(x: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(x.len(), n * k, "x is [n, k]");
        let mut data = vec![0f32; n.div_ceil(NR) * k * NR];
        if k > 0 {
            data.par_chunks_mut(k * NR).enumerate().for_each(|(panel, dst)| {
                let rows: Vec<&[f32]> = x[panel * NR * k..].chunks_exact(k).take(NR).collect();
                // By groups of [`STEPS`] steps, so that the strided writes stay in one L1-sized
                // block while each row is read in runs.
                for (group, block) in dst.chunks_mut(STEPS * NR).enumerate() {
                    let steps = group * STEPS..group * STEPS + block.len() / NR;
                    for (t, row) in rows.iter().enumerate() {
                        for (step, &value) in row[steps.clone()].iter().enumerate() {
                            block[step * NR + t] = value;
                        }
                    }
                }
            });
        }
        Self { data, n, k }
    }

    /// Panels of [`NR`] tokens (the last one may hold fewer real tokens).
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Panel `i` (all `k` steps).
    pub fn panel(&self, i: usize) -> &[f32] {
        &self.data[i * self.k * NR..(i + 1) * self.k * NR]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_hold_tokens_side_by_side_and_zero_padding() {
        let (n, k) = (NR + 3, 5);
        let x: Vec<f32> = (0..n * k).map(|i| i as f32 + 1.0).collect();
        let packed = PackedX::new(&x, n, k);
        assert_eq!(packed.panels(), 2);
        for i in 0..2 {
            let panel = packed.panel(i);
            for p in 0..k {
                for t in 0..NR {
                    let token = i * NR + t;
                    let want = if token < n { x[token * k + p] } else { 0.0 };
                    assert_eq!(panel[p * NR + t], want);
                }
            }
        }
    }
}
