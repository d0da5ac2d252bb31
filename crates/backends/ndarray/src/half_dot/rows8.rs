//! 16-bit float weights (f16, bf16) interleaved eight rows at a time, for decode with AVX2.
//!
//! Row by row, a product streams one weight row while reading the whole activation row beside
//! it; a down projection's rows (4 864 elements: 9.5 KB of weights, 19 KB of f32 activations)
//! then push the activations out of L1, and the stream ran at 17.8 GB/s against 28 for
//! 896-element rows (a kernel alone, this session's AMD EPYC). Interleaved, eight rows are one
//! stream of 128-byte steps (eight elements of each row in turn), each eight activations
//! loaded once for the eight rows: 25.7 GB/s on the long rows.
//!
//! A weight whose rows and row length are multiples of eight is interleaved by the first
//! product that reads it (the first prefill), when the CPU has AVX2 (`ZOO_INTERLEAVE=0` keeps the file's
//! layout; `Float16::rows8`): a table used only for embedding lookups stays as the file
//! stores it, its pages read a row at a time (interleaved at load, the f16 415M model's
//! resident memory had grown by its 57 MB embedding table). [`widen_rows`] gives the file's
//! values back for the GEMM tiles and embeddings once the copy exists.

use super::Half;
use crate::isa::{isa, Isa};

/// Rows interleaved together (and elements per step of a row).
pub const GROUP: usize = 8;

/// Whether a `rows × k` weight is kept interleaved on this machine.
pub fn applies(rows: usize, k: usize) -> bool {
    crate::block_dot::rows8::interleaving_enabled()
        && rows > 0
        && k > 0
        && rows.is_multiple_of(GROUP)
        && k.is_multiple_of(GROUP)
}

/// Where element `e` of row `r` lies (in elements) in the interleaved layout of rows of `k`.
#[inline(always)]
fn place(r: usize, e: usize, k: usize) -> usize {
    (r / GROUP) * GROUP * k + (e / GROUP) * GROUP * GROUP + (r % GROUP) * GROUP + e % GROUP
}

/// `plain` (row-major 16-bit values, rows of `k`, a multiple of [`GROUP`] rows) interleaved.
/// Pieces of about 4 MB are copied in parallel, and each piece's file pages handed back once
/// it is copied ([`zoo_core::Bytes::release_pages_in`]), so the copy and the file's pages of a
/// large weight (an f16 LM head: 57 MB) are never both resident.
pub fn interleave(plain: &zoo_core::Bytes, k: usize) -> Vec<u8> {
    use rayon::prelude::*;
    const PIECE: usize = 4 << 20;
    let mut out = vec![0u8; plain.len()];
    let group_bytes = 2 * GROUP * k;
    // Pieces of whole groups (the same bytes in both layouts), in parallel.
    let piece = (PIECE / group_bytes).max(1) * group_bytes;
    let pieces = plain.as_slice().par_chunks(piece).zip(out.par_chunks_mut(piece)).enumerate();
    pieces.for_each(|(p, (src, dst))| {
        for (g, group) in src.chunks_exact(group_bytes).enumerate() {
            for (r, row) in group.chunks_exact(2 * k).enumerate() {
                for (c, step) in row.chunks_exact(2 * GROUP).enumerate() {
                    let at = 2 * place(g * GROUP + r, c * GROUP, k);
                    dst[at..at + 2 * GROUP].copy_from_slice(step);
                }
            }
        }
        plain.release_pages_in(p * piece..p * piece + src.len());
    });
    out
}

/// Appends the values of rows `rows` (rows of `k`) of the interleaved `data` to `out`, row by
/// row, as the file stores them.
pub fn widen_rows(half: Half, data: &[u8], k: usize, rows: std::ops::Range<usize>, out: &mut Vec<f32>) {
    out.reserve(rows.len() * k);
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: `isa()` found AVX2 and F16C; `out` has room for the rows (reserved above).
        return unsafe { avx2::widen_rows(half, data, k, rows, out) };
    }
    for r in rows {
        for c in 0..k / GROUP {
            let at = 2 * place(r, c * GROUP, k);
            half.widen_into(&data[at..at + 2 * GROUP], out);
        }
    }
}

/// `out[j] = w_row(j) · x` for the rows of the interleaved groups in `data` (rows of
/// `x.len()`; `out` eight values a group).
pub fn rows_dot(half: Half, data: &[u8], x: &[f32], out: &mut [f32]) {
    let k = x.len();
    let groups = data.chunks_exact(2 * GROUP * k).zip(out.chunks_exact_mut(GROUP));
    for (group, dots) in groups {
        #[cfg(target_arch = "x86_64")]
        if isa() >= Isa::Avx2 {
            // SAFETY: `isa()` found AVX2, FMA and F16C; the group holds eight rows of `k`.
            dots.copy_from_slice(&unsafe { avx2::group_dot(half, group, x) });
            continue;
        }
        for (r, dot) in dots.iter_mut().enumerate() {
            *dot = (0..k)
                .map(|e| {
                    let at = 2 * place(r, e, k);
                    half.widen(u16::from_le_bytes([group[at], group[at + 1]])) * x[e]
                })
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Half, GROUP};

    /// [`super::widen_rows`] eight values per instruction, written straight into `out`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; `out` must have room for `rows.len() · k` more
    /// values; `data` must hold the rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen_rows(half: Half, data: &[u8], k: usize, rows: std::ops::Range<usize>, out: &mut Vec<f32>) {
        assert!(data.len() >= 2 * rows.end * k && out.capacity() - out.len() >= rows.len() * k);
        let dst = out.spare_capacity_mut().as_mut_ptr().cast::<f32>();
        let widen = |at: usize| {
            // SAFETY: the caller's contract (16 bytes at `at` are in `data`).
            unsafe {
                let raw = _mm_loadu_si128(data.as_ptr().add(at).cast());
                match half {
                    Half::F16 => _mm256_cvtph_ps(raw),
                    Half::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(raw))),
                }
            }
        };
        let whole_groups = rows.start.is_multiple_of(GROUP) && rows.len().is_multiple_of(GROUP);
        for (i, r) in rows.clone().enumerate() {
            if whole_groups && r % GROUP != 0 {
                continue; // written with the group's first row
            }
            for c in 0..k / GROUP {
                let at = 2 * super::place(r, c * GROUP, k);
                // SAFETY: each write is within the reserved room (row `i` of the range, or with
                // whole groups rows `i .. i + 8`, at elements `8c ..`).
                unsafe {
                    if whole_groups {
                        // The group's 128-byte step read in order, each row's eight values in place.
                        for j in 0..GROUP {
                            _mm256_storeu_ps(dst.add((i + j) * k + GROUP * c), widen(at + 16 * j));
                        }
                    } else {
                        _mm256_storeu_ps(dst.add(i * k + GROUP * c), widen(at));
                    }
                }
            }
        }
        // SAFETY: the values just written.
        unsafe { out.set_len(out.len() + rows.len() * k) };
    }

    /// `w_row · x` for the eight rows of one interleaved group.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `group` holds eight rows of `x.len()` values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn group_dot(half: Half, group: &[u8], x: &[f32]) -> [f32; GROUP] {
        let k = x.len();
        assert!(group.len() >= 2 * GROUP * k && k.is_multiple_of(GROUP));
        let mut acc = [_mm256_setzero_ps(); GROUP];
        for c in 0..k / GROUP {
            // SAFETY: step `c` (128 bytes) of the group and elements 8c.. of `x` are in bounds.
            unsafe {
                let xv = _mm256_loadu_ps(x.as_ptr().add(GROUP * c));
                let step = group.as_ptr().add(2 * GROUP * GROUP * c);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let raw = _mm_loadu_si128(step.add(16 * r).cast());
                    let w = match half {
                        Half::F16 => _mm256_cvtph_ps(raw),
                        Half::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(raw))),
                    };
                    *acc = _mm256_fmadd_ps(w, xv, *acc);
                }
            }
        }
        // The eight rows' lane sums at once: two rounds of pairwise adds, then the halves.
        let quads =
            |a: usize| _mm256_hadd_ps(_mm256_hadd_ps(acc[a], acc[a + 1]), _mm256_hadd_ps(acc[a + 2], acc[a + 3]));
        let (low, high) = (quads(0), quads(4));
        let sums = _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(low, high), _mm256_permute2f128_ps::<0x31>(low, high));
        let mut dots = [0f32; GROUP];
        // SAFETY: `dots` holds eight f32.
        unsafe { _mm256_storeu_ps(dots.as_mut_ptr(), sums) };
        dots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_rows_give_back_their_values_and_products() {
        for half in [Half::F16, Half::Bf16] {
            for (rows, k) in [(8, 8), (16, 40), (24, 896)] {
                let plain: Vec<u8> = (0..rows * k)
                    .flat_map(|i| {
                        let v = ((i * 37 % 101) as f32 - 50.0) / 17.0;
                        match half {
                            Half::F16 => half::f16::from_f32(v).to_le_bytes(),
                            Half::Bf16 => half::bf16::from_f32(v).to_le_bytes(),
                        }
                    })
                    .collect();
                let mixed = interleave(&zoo_core::Bytes::from_vec(plain.clone()), k);
                let (mut want, mut got) = (Vec::new(), Vec::new());
                half.widen_into(&plain[2 * 3 * k..], &mut want);
                widen_rows(half, &mixed, k, 3..rows, &mut got);
                assert_eq!(got, want, "{half:?} {rows}x{k}");
                let x: Vec<f32> = (0..k).map(|i| ((i * 13 % 23) as f32 - 11.0) / 7.0).collect();
                let mut dots = vec![f32::NAN; rows];
                rows_dot(half, &mixed, &x, &mut dots);
                let mut values = Vec::new();
                half.widen_into(&plain, &mut values);
                for (j, &d) in dots.iter().enumerate() {
                    let row = &values[j * k..(j + 1) * k];
                    let (want, scale) = row.iter().zip(&x).fold((0f64, 0f64), |(s, a), (&w, &v)| {
                        let p = f64::from(w) * f64::from(v);
                        (s + p, a + p.abs())
                    });
                    assert!((f64::from(d) - want).abs() <= 1e-6 * scale.max(1.0), "{half:?} row {j}: {d} vs {want}");
                }
            }
        }
    }
}
