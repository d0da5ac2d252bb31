//! Prefill against interleaved ggml block weights ([`rows8`]: `Q4_0`, `Q4_1`, `Q5_0`, `Q8_0`)
//! and the K-quants (`Q4_K`, `Q5_K`, `Q6_K`, widened by `gemm_kquants`) in integer
//! arithmetic, on CPUs with AVX512-VNNI.
//!
//! The f32 GEMM path dequantises each tile of weight rows and multiplies it with f32 FMAs (16
//! products per instruction). Here the tokens are rounded to 16 bits as decode rounds them
//! ([`Q16Row`]), each panel of [`LANES`] weight rows is widened once to i16, and one
//! `vpdpwssd` multiplies a pair of weights of all sixteen rows with a pair of one token's
//! activations and adds them (32 products per instruction) into i32 sums, one lane a weight
//! row. The sums of a 32-element block are exact; each is then scaled once by the block's
//! weight scale times the token's block scale into an f32 total (`Q4_1`'s minimums add
//! `m · Σx` per block), as decode's kernels do.
//!
//! Layouts:
//! - a [`Panel`]: per block, the 16 pairs of weights (`2p`, `2p + 1`) of each of its rows side
//!   by side (`[block][pair][lane][2]` i16, the nibble types' offsets already taken off: `Q4_0`
//!   as `q − 8`, `Q5_0` as `q − 16`), then the rows' scales (`[block][lane]` f32) and, for
//!   `Q4_1`, minimums (the K-quants: `Q6_K` has two scales a block, one per 16 elements;
//!   `Q4_K`/`Q5_K` a constant term `−dmin · m`). Widened from [`rows8`]'s groups, two groups
//!   of eight rows a panel, or from K-quant rows as stored;
//! - a [`Tokens`] group: up to [`TOKENS`] tokens' pairs of 16-bit activations as one i32 each
//!   (`[block][pair][token]`), so the kernel broadcasts each from one pointer, and their block
//!   scales and sums.
//!
//! The micro-kernel ([`super::gemm_avx512`]) holds one panel by up to twelve tokens: twelve
//! i32 sums and twelve f32 totals in registers. Panels run in parallel; each is widened once and
//! meets every token group while it is in cache.
//!
//! `ZOO_BLOCK_GEMM=0` turns it off (the f32 GEMM path then runs), for measuring.

use std::sync::OnceLock;

use rayon::prelude::*;

use zoo_core::quant::QK;
use zoo_core::{kquant, DType};

use super::{rows8, Q16Row};
use crate::isa::{isa, Isa};
use crate::matmul::par_column_blocks;
use crate::tensor::Blocks;

/// Weight rows per panel: one 16-lane vector of i32 sums.
pub const LANES: usize = 16;
/// Tokens per micro-kernel call, at most.
pub const TOKENS: usize = 12;
/// Pairs of weights per 32-element block.
pub const PAIRS: usize = QK / 2;

/// Whether [`gemm`] multiplies `w` here: weights interleaved by [`rows8`], or of the
/// K-quants, on a CPU with AVX512-VNNI, unless `ZOO_BLOCK_GEMM=0`.
pub fn applies(w: &Blocks) -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    let enabled = *ENABLED.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && isa() >= Isa::Avx512Vnni
            && std::env::var("ZOO_BLOCK_GEMM").map_or(true, |v| v.trim() != "0")
    });
    enabled && (w.interleaved.is_some() || kquant::is_k_quant(w.dtype))
}

/// `out = x · wᵀ` (`out` `[n, m]`) for the `n` tokens of `k` elements (whole blocks) that
/// `tokens` holds and the `m` interleaved weight rows of `w`; callers check [`applies`] first.
///
/// # Panics
/// If `w` is neither interleaved nor a K-quant, or a length does not match.
pub fn gemm(tokens: &Tokens, w: &Blocks, k: usize, m: usize, out: &mut [f32]) {
    let n = tokens.n;
    assert!(k.is_multiple_of(w.dtype.block_size()) && tokens.k == k && out.len() == n * m, "gemm: shapes");
    assert!(w.interleaved.is_some() || kquant::is_k_quant(w.dtype), "gemm: a weight it takes");
    par_column_blocks(n, m, LANES, out, |first, rows, part| {
        PANEL.with_borrow_mut(|panel| {
            panel.widen_weight(w, k, first..first + rows);
            let mut token = 0;
            for group in &tokens.groups {
                run(panel, group, &mut part[token * rows..], rows);
                token += group.count;
            }
        })
    });
}

thread_local! {
    /// Each thread's panel, reused from product to product: a fresh one for a long row (150 KB
    /// for 4 864 elements) is a fresh mapping from the allocator, zeroed page by page.
    static PANEL: std::cell::RefCell<Panel> = const {
        std::cell::RefCell::new(Panel { q: Vec::new(), d: Vec::new(), groups: 1, m: Vec::new(), rows: 0 })
    };
}

/// One panel of up to [`LANES`] weight rows, widened (the module doc gives the layout).
pub struct Panel {
    /// `[block][pair][lane][2]` weights.
    pub q: Vec<i16>,
    /// `[scale group][lane]` scales: one group a block, or two (`Q6_K`'s 16-element groups).
    pub d: Vec<f32>,
    /// Scale groups per 32-element block: 1, or 2 for `Q6_K`.
    pub groups: usize,
    /// `[block][lane]` constant terms (`Q4_1`'s minimums; `−dmin · m` of `Q4_K`, `Q5_K`),
    /// else empty.
    pub m: Vec<f32>,
    /// The rows it holds (the lanes past them are zero).
    pub rows: usize,
}

impl Panel {
    /// Rows `rows` (at most [`LANES`], starting and ending on a group of eight) of the
    /// interleaved `dtype` weight `data` of `row_blocks` blocks a row, widened.
    #[cfg(test)]
    pub fn widen(dtype: DType, data: &[u8], row_blocks: usize, rows: std::ops::Range<usize>) -> Self {
        let mut panel = Self { q: Vec::new(), d: Vec::new(), groups: 1, m: Vec::new(), rows: 0 };
        panel.widen_into(dtype, data, row_blocks, rows);
        panel
    }

    /// Rows `rows` (at most [`LANES`]) of `w` (rows of `k` elements), widened: interleaved
    /// weights (`rows` on groups of eight) or K-quants.
    pub fn widen_weight(&mut self, w: &Blocks, k: usize, rows: std::ops::Range<usize>) {
        let row_bytes = k / w.dtype.block_size() * w.dtype.block_bytes();
        match (w.interleaved, kquant::is_k_quant(w.dtype)) {
            (Some(row_blocks), false) => self.widen_into(w.dtype, w.data.as_slice(), row_blocks, rows),
            // `Q4_K` and `Q6_K` rows interleaved in layouts of their own.
            (Some(_), true) => {
                let on_groups = rows.start.is_multiple_of(rows8::GROUP) && rows.len().is_multiple_of(rows8::GROUP);
                assert!(rows.len() <= LANES && on_groups, "interleaved rows come in groups of eight");
                self.size(w.dtype, k / QK, rows.len());
                let group_bytes = rows8::GROUP * row_bytes;
                for (half, set) in (rows.start / rows8::GROUP..rows.end / rows8::GROUP).enumerate() {
                    let groups = &w.data.as_slice()[set * group_bytes..][..group_bytes];
                    match w.dtype {
                        DType::Q6_K => super::rows8_super::widen_half::<super::rows8_q6k::Q6K>(groups, half, self),
                        // `Q4_K`, the only other K-quant `rows8` interleaves.
                        _ => super::rows8_super::widen_half::<super::rows8_k::Q4K>(groups, half, self),
                    }
                }
            }
            (None, _) => {
                let data = &w.data.as_slice()[rows.start * row_bytes..rows.end * row_bytes];
                self.size(w.dtype, k / QK, rows.len());
                super::gemm_kquants::widen(w.dtype, data, row_bytes, 0, self);
            }
        }
    }

    /// [`Panel::widen`] into this panel's buffers.
    pub fn widen_into(&mut self, dtype: DType, data: &[u8], row_blocks: usize, rows: std::ops::Range<usize>) {
        assert!(
            rows.len() <= LANES && rows.start.is_multiple_of(rows8::GROUP) && rows.len().is_multiple_of(rows8::GROUP)
        );
        self.size(dtype, row_blocks, rows.len());
        let group_bytes = rows8::GROUP * dtype.block_bytes();
        for (half, set) in (rows.start / rows8::GROUP..rows.end / rows8::GROUP).enumerate() {
            let groups = &data[set * row_blocks * group_bytes..][..row_blocks * group_bytes];
            #[cfg(target_arch = "x86_64")]
            if isa() >= Isa::Avx2 {
                // SAFETY: `isa()` found AVX2 and F16C.
                unsafe { super::gemm_avx512::widen_half(dtype, groups, half, self) };
                continue;
            }
            self.widen_half_portable(dtype, groups, half);
        }
    }

    /// Sizes the buffers for `blocks` 32-element blocks of `rows` rows of `dtype` (the lanes
    /// past `rows` zero; with all of them the old values stay, to be overwritten).
    fn size(&mut self, dtype: DType, blocks: usize, rows: usize) {
        let constant_terms = matches!(dtype, DType::Q4_1 | DType::Q4_K | DType::Q5_K);
        self.groups = if dtype == DType::Q6_K { 2 } else { 1 };
        let whole = rows == LANES;
        sized(&mut self.q, blocks * PAIRS * LANES * 2, whole);
        sized(&mut self.d, blocks * self.groups * LANES, whole);
        sized(&mut self.m, if constant_terms { blocks * LANES } else { 0 }, whole);
        self.rows = rows;
    }

    /// Lanes `8 · half ..` of the panel from the eight rows of `groups` (one block after
    /// another), by the plain per-element formulas (tests check the intrinsics against it).
    pub(super) fn widen_half_portable(&mut self, dtype: DType, groups: &[u8], half: usize) {
        let row_blocks = self.d.len() / LANES;
        for r in 0..rows8::GROUP {
            let lane = half * rows8::GROUP + r;
            for b in 0..row_blocks {
                let (d, m, q) = rows8::block_integers(dtype, groups, row_blocks, (r, b));
                self.d[b * LANES + lane] = d;
                if !self.m.is_empty() {
                    self.m[b * LANES + lane] = m;
                }
                for (e, &v) in q.iter().enumerate() {
                    self.q[((b * PAIRS + e / 2) * LANES + lane) * 2 + e % 2] = v;
                }
            }
        }
    }
}

/// `v` at length `len`: its elements kept where `keep` (they are about to be overwritten),
/// else all zero.
fn sized<T: Copy + Default>(v: &mut Vec<T>, len: usize, keep: bool) {
    if !keep {
        v.clear();
    }
    v.resize(len, T::default());
    v.truncate(len);
}

/// The tokens of a product, rounded to 16 bits and grouped for the micro-kernel.
pub struct Tokens {
    /// Groups of [`TOKENS`] tokens, the last shorter.
    pub groups: Vec<TokenGroup>,
    /// Tokens.
    pub n: usize,
    /// Elements per token.
    pub k: usize,
}

/// Up to [`TOKENS`] tokens (the module doc gives the layout).
pub struct TokenGroup {
    /// Tokens in the group.
    pub count: usize,
    /// `[block][pair][token]` pairs of 16-bit activations.
    pub q: Vec<i32>,
    /// `[block][token]` block scales.
    pub d: Vec<f32>,
    /// `[block][token]` block sums (`d · Σ q`).
    pub s: Vec<f32>,
}

impl Tokens {
    /// `x` (`n` tokens of `k`, whole blocks) rounded and grouped, the groups in parallel.
    pub fn pack(x: &[f32], n: usize, k: usize) -> Self {
        let groups = x[..n * k].par_chunks(TOKENS * k.max(1)).map(|group| TokenGroup::pack(group, k)).collect();
        Self { groups, n, k }
    }
}

impl TokenGroup {
    /// The tokens of `x` (whole ones of `k` elements, at most [`TOKENS`]) rounded and laid out.
    fn pack(x: &[f32], k: usize) -> Self {
        let (blocks, count) = (k / QK, x.len() / k.max(1));
        let mut group = Self {
            count,
            q: vec![0; blocks * PAIRS * count],
            d: vec![0.0; blocks * count],
            s: vec![0.0; blocks * count],
        };
        for (t, token) in x.chunks_exact(k).enumerate() {
            let row = Q16Row::quantize(token);
            for (p, pair) in row.q.chunks_exact(2).enumerate() {
                group.q[p * count + t] = i32::from(pair[0] as u16) | i32::from(pair[1]) << 16;
            }
            for b in 0..blocks {
                group.d[b * count + t] = row.d[b];
                group.s[b * count + t] = row.s[b];
            }
        }
        group
    }
}

/// `part[t · ldc + j] = Σ` over the panel's blocks for each token `t` of `group` and row `j` of
/// `panel` (`part` starts at the group's first token; `ldc` its row length).
fn run(panel: &Panel, group: &TokenGroup, part: &mut [f32], ldc: usize) {
    assert!(part.len() >= (group.count - 1) * ldc + panel.rows, "gemm: output tile");
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx512Vnni {
        // SAFETY: `isa()` found AVX-512F/BW/VL and VNNI; the tile is in bounds (asserted).
        unsafe { super::gemm_avx512::tile(panel, group, part.as_mut_ptr(), ldc) };
        return;
    }
    run_portable(panel, group, part, ldc);
}

/// [`run`] by the plain loops (the same sums; tests compare the kernel with it).
pub(super) fn run_portable(panel: &Panel, group: &TokenGroup, part: &mut [f32], ldc: usize) {
    let blocks = panel.q.len() / (PAIRS * LANES * 2);
    let pairs = PAIRS / panel.groups; // per scale group
    for t in 0..group.count {
        for j in 0..panel.rows {
            let mut total = 0f32;
            for b in 0..blocks {
                for g in 0..panel.groups {
                    let mut dot = 0i32;
                    for p in g * pairs..(g + 1) * pairs {
                        let pair = group.q[(b * PAIRS + p) * group.count + t];
                        let w = &panel.q[((b * PAIRS + p) * LANES + j) * 2..][..2];
                        dot += i32::from(w[0]) * i32::from(pair as i16) + i32::from(w[1]) * (pair >> 16);
                    }
                    let scale = panel.d[(b * panel.groups + g) * LANES + j] * group.d[b * group.count + t];
                    total = (dot as f32).mul_add(scale, total);
                }
                if !panel.m.is_empty() {
                    total = panel.m[b * LANES + j].mul_add(group.s[b * group.count + t], total);
                }
            }
            part[t * ldc + j] = total;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::block_dot::rows8::tests::plain;

    const TYPES: [DType; 4] = [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0];

    fn tokens(n: usize, k: usize) -> Vec<f32> {
        (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0 + (i % 29) as f32 * 0.03).collect()
    }

    #[test]
    fn widened_panels_match_the_plain_formulas() {
        let row_blocks = 3;
        for dtype in TYPES {
            let data = rows8::interleave(dtype, &plain(dtype, 24, row_blocks), row_blocks);
            for rows in [0..16, 16..24] {
                let got = Panel::widen(dtype, &data, row_blocks, rows.clone());
                let mut want = Panel {
                    groups: 1,
                    q: vec![0; got.q.len()],
                    d: vec![0.0; got.d.len()],
                    m: vec![0.0; got.m.len()],
                    rows: got.rows,
                };
                let group_bytes = rows8::GROUP * dtype.block_bytes();
                for (half, set) in (rows.start / 8..rows.end / 8).enumerate() {
                    want.widen_half_portable(
                        dtype,
                        &data[set * row_blocks * group_bytes..][..row_blocks * group_bytes],
                        half,
                    );
                }
                assert_eq!((&got.q, &got.d, &got.m), (&want.q, &want.d, &want.m), "{dtype} rows {rows:?}");
                // A panel reused after a full one: the lanes past a half panel are zero again.
                let mut reused = Panel::widen(dtype, &data, row_blocks, 0..16);
                reused.widen_into(dtype, &data, row_blocks, rows.clone());
                assert_eq!((reused.q, reused.d, reused.m), (got.q, got.d, got.m), "{dtype} reused for {rows:?}");
            }
        }
    }

    #[test]
    fn products_match_the_f64_sums_of_what_they_multiply() {
        // Each token as decode rounds it, each weight block as integers (`block_integers`):
        // the product in f64, within 1e-6 of the sum of the terms' magnitudes.
        for dtype in TYPES {
            for (n, rows, row_blocks) in [(1, 8, 2), (13, 24, 5), (30, 32, 3), (12, 16, 28)] {
                let k = row_blocks * QK;
                let data = rows8::interleave(dtype, &plain(dtype, rows, row_blocks), row_blocks);
                let w = Blocks { dtype, data: zoo_core::Bytes::from_vec(data.clone()), interleaved: Some(row_blocks) };
                let x = tokens(n, k);
                let mut got = vec![f32::NAN; n * rows];
                gemm(&Tokens::pack(&x, n, k), &w, k, rows, &mut got);
                for (t, got) in got.chunks_exact(rows).enumerate() {
                    let token = Q16Row::quantize(&x[t * k..(t + 1) * k]);
                    for (j, &g) in got.iter().enumerate() {
                        let (mut want, mut scale) = (0f64, 0f64);
                        for b in 0..row_blocks {
                            let group = &data[(j / 8) * row_blocks * 8 * dtype.block_bytes()..];
                            let (d, m, q) = rows8::block_integers(dtype, group, row_blocks, (j % 8, b));
                            for (e, &q) in q.iter().enumerate() {
                                let xv = f64::from(token.d[b]) * f64::from(token.q[b * QK + e]);
                                let term = (f64::from(d) * f64::from(q) + f64::from(m)) * xv;
                                (want, scale) = (want + term, scale + term.abs());
                            }
                        }
                        let close = (f64::from(g) - want).abs() <= 1e-6 * scale.max(1.0);
                        assert!(close, "{dtype} {:?} token {t} row {j}: {g} vs {want}", (n, rows, row_blocks));
                    }
                }
            }
        }
    }

    #[test]
    fn the_kernel_matches_the_plain_loops() {
        let row_blocks = 4;
        for dtype in TYPES {
            let data = rows8::interleave(dtype, &plain(dtype, 16, row_blocks), row_blocks);
            let panel = Panel::widen(dtype, &data, row_blocks, 0..16);
            for n in 1..=TOKENS {
                let packed = Tokens::pack(&tokens(n, row_blocks * QK), n, row_blocks * QK);
                let (mut got, mut want) = (vec![f32::NAN; n * 20], vec![f32::NAN; n * 20]);
                run(&panel, &packed.groups[0], &mut got, 20);
                run_portable(&panel, &packed.groups[0], &mut want, 20);
                for (at, (g, e)) in got.iter().zip(&want).enumerate() {
                    if at % 20 < 16 {
                        assert!((g - e).abs() <= 1e-6 * e.abs().max(1.0), "{dtype} n {n} at {at}: {g} vs {e}");
                    } else {
                        assert!(g.is_nan(), "{dtype}: the kernel wrote past its lanes at {at}");
                    }
                }
            }
        }
    }

    /// `rows` rows of `blocks` K-quant super-blocks of `dtype`: varied bytes, sane f16 scales.
    pub(crate) fn k_quant_rows(dtype: DType, rows: usize, blocks: usize) -> Vec<u8> {
        let size = dtype.block_bytes();
        let mut data: Vec<u8> = (0..rows * blocks * size).map(|i| ((i * 31 + i * i * 7) % 251) as u8).collect();
        for (n, block) in data.chunks_exact_mut(size).enumerate() {
            let d = half::f16::from_f32(0.001 + (n % 5) as f32 * 4e-4).to_le_bytes();
            let dmin = half::f16::from_f32(0.002 + (n % 3) as f32 * 5e-4).to_le_bytes();
            match dtype {
                DType::Q6_K => block[208..210].copy_from_slice(&d),
                _ => {
                    block[0..2].copy_from_slice(&d);
                    block[2..4].copy_from_slice(&dmin);
                }
            }
        }
        data
    }

    #[test]
    fn k_quant_rows_widen_into_any_lanes() {
        // Two halves of eight rows (the way interleaved rows are widened without AVX2) fill the
        // panel as the sixteen rows at once do.
        for dtype in [DType::Q4_K, DType::Q5_K, DType::Q6_K] {
            let (blocks, row_bytes) = (2, 2 * dtype.block_bytes());
            let data = k_quant_rows(dtype, 16, blocks);
            let empty = || Panel { q: Vec::new(), d: Vec::new(), groups: 1, m: Vec::new(), rows: 0 };
            let (mut whole, mut halves) = (empty(), empty());
            for panel in [&mut whole, &mut halves] {
                panel.size(dtype, blocks * kquant::QK_K / QK, 16);
            }
            super::super::gemm_kquants::widen(dtype, &data, row_bytes, 0, &mut whole);
            for half in 0..2 {
                let rows = &data[half * 8 * row_bytes..(half + 1) * 8 * row_bytes];
                super::super::gemm_kquants::widen(dtype, rows, row_bytes, 8 * half, &mut halves);
            }
            assert_eq!((whole.q, whole.d, whole.m), (halves.q, halves.d, halves.m), "{dtype}");
        }
    }

    #[test]
    fn k_quant_products_match_the_f64_sums_of_what_they_multiply() {
        for dtype in [DType::Q4_K, DType::Q5_K, DType::Q6_K] {
            // Rows that fill panels, and a last panel of fewer than 16 (and than 8) rows.
            for (n, rows, blocks) in [(3, 16, 1), (14, 21, 2), (25, 5, 1), (9, 24, 2)] {
                let k = blocks * kquant::QK_K;
                let data = k_quant_rows(dtype, rows, blocks);
                let w = Blocks { dtype, data: zoo_core::Bytes::from_vec(data.clone()), interleaved: None };
                assert!(applies(&w) || isa() < Isa::Avx512Vnni);
                let x = tokens(n, k);
                let mut got = vec![f32::NAN; n * rows];
                gemm(&Tokens::pack(&x, n, k), &w, k, rows, &mut got);
                if rows8::applies(dtype, rows) {
                    // `Q4_K` rows interleaved eight at a time: the same products.
                    let mixed = rows8::interleave(dtype, &data, blocks);
                    let w = Blocks { dtype, data: zoo_core::Bytes::from_vec(mixed), interleaved: Some(blocks) };
                    let mut again = vec![f32::NAN; n * rows];
                    gemm(&Tokens::pack(&x, n, k), &w, k, rows, &mut again);
                    assert_eq!(again, got, "{dtype} interleaved");
                }
                let mut dense = Vec::new();
                zoo_core::quant::dequantize(dtype, &data, &mut dense);
                for (t, got) in got.chunks_exact(rows).enumerate() {
                    let token = Q16Row::quantize(&x[t * k..(t + 1) * k]);
                    for (j, &g) in got.iter().enumerate() {
                        let terms = dense[j * k..(j + 1) * k]
                            .iter()
                            .enumerate()
                            .map(|(e, &w)| f64::from(w) * f64::from(token.d[e / QK]) * f64::from(token.q[e]));
                        let (want, scale) = terms.fold((0f64, 0f64), |(s, a), v| (s + v, a + v.abs()));
                        let close = (f64::from(g) - want).abs() <= 1e-6 * scale.max(1.0);
                        assert!(close, "{dtype} {:?} token {t} row {j}: {g} vs {want}", (n, rows, blocks));
                    }
                }
            }
        }
    }
}
