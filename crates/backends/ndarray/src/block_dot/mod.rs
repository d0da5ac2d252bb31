//! Dot products of ggml weight blocks ([`DType::Q8_0`], [`DType::Q4_0`], [`DType::Q4_1`], and
//! the K-quants in [`k_quants`]) with an activation row, the decode hot loop.
//!
//! A decode step reads every weight once, so it should run at the speed weights stream from
//! memory. Widening quants to f32 costs more than reading them, so the activation row is
//! quantised to 16 bits once per `linear` ([`Q16Row`]: blocks of 32 with an f32 scale) and each
//! block is multiplied in integers (`madd`: 16 products per instruction), its scales applied
//! once per block. The rounding (half of 1/32767 of a block's largest activation) is ~1e-5 of
//! the products' terms, far below the weights' own quantisation error; `tests/tests/smollm2.rs`
//! bounds its effect on the logits. (ggml rounds activations to 8 bits, which is faster still
//! but moves logits by ~2%, enough to change greedy tokens at near-ties.) `Q8_0` took f32
//! activations until 2026-11-29 (each byte widened to f32, four FMAs per block): the 16-bit
//! row decodes the 415M model 1.2–1.3× as fast on an AMD EPYC (one thread 41–44 against
//! 34 tok/s), and moved its logits by 1.1e-4 of the largest (SmolLM2's, whose LM head is
//! `Q8_0`, by 5e-5).
//!
//! [`crate::isa`] (checked once at run time, capped by `ZOO_CPU_KERNELS`) picks the kernels:
//! with AVX-512F/BW/VL and AVX512-VNNI the intrinsics in `avx512` and `k_quants_avx512`
//! (`vpdpwssd`; `Q8_0`, `Q4_0` and `Q4_1` stay on `avx2`'s); with AVX2 and
//! FMA (an AVX-512 CPU without VNNI included) those in `avx2` and `k_quants_avx2`; elsewhere
//! the plain loops here.
//! All compute the same sums in another order. A batched step's rows share each widened 4- or
//! 8-bit block ([`rows_dot_tile`]), each row's sums unchanged.

use std::sync::OnceLock;

use zoo_core::quant::QK;
use zoo_core::DType;

use crate::isa::{isa, Isa};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod gemm;
#[cfg(target_arch = "x86_64")]
mod gemm_avx512;
mod gemm_kquants;
mod k_quants;
#[cfg(target_arch = "x86_64")]
mod k_quants_avx2;
#[cfg(target_arch = "x86_64")]
mod k_quants_avx512;
#[cfg(target_arch = "x86_64")]
mod q16_avx2;
pub mod rows8;
mod rows8_k;
mod rows8_q6k;
mod rows8_super;

/// One activation row, prepared for the block kernels: rounded to 16 bits ([`Q16Row`]).
pub struct Activations {
    /// The row in 16 bits.
    q16: Q16Row,
}

impl Activations {
    /// Prepares `x` (a whole number of blocks).
    pub fn new(x: &[f32]) -> Self {
        Self { q16: Q16Row::quantize(x) }
    }

    /// The row in 16 bits.
    pub fn q16(&self) -> &Q16Row {
        &self.q16
    }

    /// The values the kernels multiply (tests compare against them).
    #[cfg(test)]
    pub fn seen(&self) -> Vec<f32> {
        self.q16.dequantized()
    }
}
/// One activation row quantised to 16 bits in blocks of [`QK`]: `x ≈ d[b] · q[b·QK + i]`.
#[derive(Debug, Clone, Default)]
pub struct Q16Row {
    /// Per-block scale.
    d: Vec<f32>,
    /// Per-block `d · Σ q`: the block's sum (the 4-bit types' offsets multiply it).
    s: Vec<f32>,
    /// The quantised values.
    q: Vec<i16>,
}

impl Q16Row {
    /// Quantises `x` (a whole number of blocks) with round-to-nearest, scale `max |x| / 32767`.
    pub fn quantize(x: &[f32]) -> Self {
        Self::quantize_with(isa(), x)
    }

    /// [`Q16Row::quantize`] through the loop of `level` (capped at [`isa`]); every level gives
    /// the same row, bit for bit.
    fn quantize_with(level: Isa, x: &[f32]) -> Self {
        let blocks = x.len() / QK;
        let mut row = Self { d: Vec::with_capacity(blocks), s: Vec::with_capacity(blocks), q: vec![0; blocks * QK] };
        let x = &x[..blocks * QK];
        #[cfg(target_arch = "x86_64")]
        if level.min(isa()) >= Isa::Avx2 {
            // SAFETY: `isa()` found AVX2.
            unsafe { q16_avx2::quantize(x, &mut row.d, &mut row.s, &mut row.q) };
            return row;
        }
        for (xb, qb) in x.chunks_exact(QK).zip(row.q.chunks_exact_mut(QK)) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 32767.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in qb.iter_mut().zip(xb) {
                *q = (v * inv).round() as i16;
                sum += i32::from(*q);
            }
            row.d.push(d);
            row.s.push(d * sum as f32);
        }
        row
    }

    /// The values this row stands for (tests compare against them).
    #[cfg(test)]
    pub fn dequantized(&self) -> Vec<f32> {
        self.q.iter().enumerate().map(|(i, &q)| self.d[i / QK] * f32::from(q)).collect()
    }
}

/// `out[j] = w_row(j) · x` for the weight rows (each `row_bytes` long) of `weights`, which
/// hold `dtype` blocks. Other types leave `out` untouched.
pub fn rows_dot(dtype: DType, weights: &[u8], row_bytes: usize, x: &Activations, out: &mut [f32]) {
    rows_dot_with((isa(), rows_per_call(dtype)), dtype, weights, row_bytes, x, out);
}

/// [`rows_dot`] through the kernels of `level`, capped at [`isa`] (so never an instruction the
/// CPU lacks), `rows` weight rows per x86 kernel call (1, 2 or 4); tests run every level below
/// the cap and every row count this way.
fn rows_dot_with(
    (level, rows): (Isa, usize),
    dtype: DType,
    weights: &[u8],
    row_bytes: usize,
    x: &Activations,
    out: &mut [f32],
) {
    let level = level.min(isa());
    let q = &x.q16;
    if zoo_core::kquant::is_k_quant(dtype) {
        return k_quants::rows(level, dtype, weights, row_bytes, q, out);
    }
    let lut = f16_table();
    #[cfg(target_arch = "x86_64")]
    if level >= Isa::Avx2 {
        // SAFETY (each arm): `level` is at most `isa()`, which found its instructions.
        match dtype {
            DType::Q8_0 => unsafe { x86_nibble_rows::<Q8_0>((level, rows), weights, row_bytes, q, lut, out) },
            DType::Q4_0 => unsafe { x86_nibble_rows::<Q4_0>((level, rows), weights, row_bytes, q, lut, out) },
            DType::Q4_1 => unsafe { x86_nibble_rows::<Q4_1>((level, rows), weights, row_bytes, q, lut, out) },
            DType::Q5_0 => unsafe { x86_nibble_rows::<Q5_0>((level, rows), weights, row_bytes, q, lut, out) },
            DType::Q5_1 => unsafe { x86_nibble_rows::<Q5_1>((level, rows), weights, row_bytes, q, lut, out) },
            _ => {}
        }
        return;
    }
    if let Some(layout) = Nibbles::of(dtype) {
        let each = weights.chunks_exact(row_bytes).zip(out.iter_mut());
        each.for_each(|(w, o)| *o = q4_row(w, q, lut, layout));
    }
}

/// Activation rows that share each widened weight block in [`rows_dot_tile`] (one weight row
/// by four activation rows measured fastest: 2 × 4 and 4 × 2 slower, 1 × 8 spills registers).
const TILE_ACTIVATIONS: usize = 4;

/// `out[a · f + j] = w_row(j) · xs[a]` for the `f` weight rows of `weights` (each `row_bytes`
/// long) and each activation row of `xs` (`out`: `xs.len()` rows of `f`).
/// With AVX2, `Q8_0`, `Q4_0` and `Q4_1` widen each weight block once for [`TILE_ACTIVATIONS`]
/// rows of a batched step (the widening is most of a kernel's instructions, and a batched step
/// is bound by them); other types, and the rows left over, go through [`rows_dot`] one by one.
/// The values are [`rows_dot`]'s for each row, bit for bit.
pub fn rows_dot_tile(dtype: DType, weights: &[u8], row_bytes: usize, xs: &[Activations], out: &mut [f32]) {
    let features = out.len() / xs.len().max(1);
    #[cfg(target_arch = "x86_64")]
    let done = x86_tiles(dtype, weights, row_bytes, xs, out, features);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (x, dst) in xs[done..].iter().zip(out[done * features..].chunks_exact_mut(features.max(1))) {
        rows_dot(dtype, weights, row_bytes, x, dst);
    }
}

/// The whole groups of [`TILE_ACTIVATIONS`] rows of `xs` through the AVX2 tile kernels, when
/// the CPU has AVX2 and `dtype` has one; how many rows of `xs` that covered (0 otherwise).
#[cfg(target_arch = "x86_64")]
fn x86_tiles(
    dtype: DType,
    weights: &[u8],
    row_bytes: usize,
    xs: &[Activations],
    out: &mut [f32],
    features: usize,
) -> usize {
    if isa() < Isa::Avx2 || !matches!(dtype, DType::Q8_0 | DType::Q4_0 | DType::Q4_1) {
        return 0;
    }
    let lut = f16_table();
    let mut done = 0;
    let groups = xs.chunks_exact(TILE_ACTIVATIONS).zip(out.chunks_exact_mut(TILE_ACTIVATIONS * features));
    for (group, dst) in groups {
        let Ok(group) = <&[Activations; TILE_ACTIVATIONS]>::try_from(group) else { break };
        let q = group.each_ref().map(|x| &x.q16);
        // SAFETY (each kernel): `isa()` found AVX2 and FMA.
        match dtype {
            DType::Q8_0 => put_columns(weights, row_bytes, dst, |w| unsafe {
                avx2::q4_tile::<1, TILE_ACTIVATIONS, Q8_0>(w, row_bytes, q, lut)[0]
            }),
            DType::Q4_0 => put_columns(weights, row_bytes, dst, |w| unsafe {
                avx2::q4_tile::<1, TILE_ACTIVATIONS, Q4_0>(w, row_bytes, q, lut)[0]
            }),
            DType::Q4_1 => put_columns(weights, row_bytes, dst, |w| unsafe {
                avx2::q4_tile::<1, TILE_ACTIVATIONS, Q4_1>(w, row_bytes, q, lut)[0]
            }),
            _ => return done,
        }
        done += TILE_ACTIVATIONS;
    }
    done
}

/// `dst` ([`TILE_ACTIVATIONS`] rows of `f`) filled column by column: column `j` is
/// `column(weight row j)`, one value per activation row.
#[cfg(target_arch = "x86_64")]
fn put_columns(weights: &[u8], row_bytes: usize, dst: &mut [f32], column: impl Fn(&[u8]) -> [f32; TILE_ACTIVATIONS]) {
    let features = dst.len() / TILE_ACTIVATIONS;
    for (j, w) in weights.chunks_exact(row_bytes).take(features).enumerate() {
        for (a, v) in column(w).into_iter().enumerate() {
            dst[a * features + j] = v;
        }
    }
}

/// The rows of a weight of `K` blocks through the x86 kernels of `level`, `rows` (1, 2 or 4)
/// at a time.
///
/// # Safety
/// The CPU must have `level`'s instructions, and `level` must be at least [`Isa::Avx2`].
#[cfg(target_arch = "x86_64")]
unsafe fn x86_nibble_rows<K: NibbleKind>(
    (level, rows): (Isa, usize),
    weights: &[u8],
    row_bytes: usize,
    q: &Q16Row,
    lut: &F16Table,
    out: &mut [f32],
) {
    // SAFETY (every kernel call): the caller's contract.
    let one = |w: &[u8]| unsafe { x86_rows::<1, K>(level, w, row_bytes, q, lut) }[0];
    match rows {
        4 => by_rows(weights, row_bytes, out, |w| unsafe { x86_rows::<4, K>(level, w, row_bytes, q, lut) }, one),
        2 => by_rows(weights, row_bytes, out, |w| unsafe { x86_rows::<2, K>(level, w, row_bytes, q, lut) }, one),
        _ => by_rows(weights, row_bytes, out, |w| [one(w)], one),
    }
}

/// `R` consecutive rows of `K` blocks through the x86 kernel of `level`: AVX-512 VNNI's for the
/// 5-bit types (their fifth bits are lane masks there), AVX2's otherwise (on `Q4_0`/`Q4_1` it
/// measured faster than the VNNI kernel, 227 against 303–340 µs in `linear_bench`).
///
/// # Safety
/// The CPU must have `level`'s instructions, and `level` must be at least [`Isa::Avx2`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn x86_rows<const R: usize, K: NibbleKind>(
    level: Isa,
    w: &[u8],
    row_bytes: usize,
    q: &Q16Row,
    lut: &F16Table,
) -> [f32; R] {
    // SAFETY (both): the caller's contract.
    if level >= Isa::Avx512Vnni && K::LAYOUT.mask_at.is_some() {
        unsafe { avx512::q4_rows::<R, K>(w, row_bytes, q, lut) }
    } else {
        unsafe { avx2::q4_rows::<R, K>(w, row_bytes, q, lut) }
    }
}

/// How many weight rows one call of the x86 block kernels streams through side by side. They
/// share each block of activations, which pays on Intel cores (4 rows); on AMD's family 19h a
/// single sequential stream is faster (the 415M model's decode, one thread: `Q4_0` 45 tok/s
/// with one row against 40 with four and 37 with two), and `Q8_0` blocks, at 34 bytes, take
/// one row everywhere (four rows: 24 against 41 tok/s on that AMD CPU). `ZOO_BLOCK_ROWS`
/// (1, 2 or 4) sets it for the 4- and 5-bit types, for measuring.
fn rows_per_call(dtype: DType) -> usize {
    static NIBBLE_ROWS: OnceLock<usize> = OnceLock::new();
    if dtype == DType::Q8_0 {
        return 1;
    }
    *NIBBLE_ROWS.get_or_init(|| {
        let set = std::env::var("ZOO_BLOCK_ROWS").ok().and_then(|v| v.trim().parse().ok());
        match set {
            Some(n @ (1 | 2 | 4)) => n,
            _ if crate::isa::splits_512_bit_ops() => 1,
            _ => 4,
        }
    })
}

/// `out`'s rows of `weights` (each `row_bytes` long) by `many` (given `R` consecutive rows),
/// then the rest one by one by `one`.
fn by_rows<const R: usize>(
    weights: &[u8],
    row_bytes: usize,
    out: &mut [f32],
    many: impl Fn(&[u8]) -> [f32; R],
    one: impl Fn(&[u8]) -> f32,
) {
    let done = out.len() / R * R;
    let mut groups = out.chunks_exact_mut(R);
    for (w, o) in weights.chunks_exact(R * row_bytes).zip(&mut groups) {
        o.copy_from_slice(&many(w));
    }
    for (w, o) in weights[done * row_bytes..].chunks_exact(row_bytes).zip(groups.into_remainder()) {
        *o = one(w);
    }
}

/// Where a 32-element block of 4-bit (`Q4_0`, `Q4_1`), 5-bit (`Q5_0`, `Q5_1`) or 8-bit (`Q8_0`)
/// quants keeps its fields. Every one is `d·q + m` per element: `Q4_0` is `d·(q − 8)`, so
/// `m = −8d`, `Q5_0` `m = −16d` and `Q8_0` (signed bytes) `m = 0`; `Σ m·x = m · x.s` per
/// block, so the nibble types share the unsigned quant product.
#[derive(Clone, Copy, Debug)]
pub struct Nibbles {
    /// The block type (its bytes per block come from [`DType::block_bytes`]).
    pub dtype: DType,
    /// Where the f16 `m` is, for the types that store one.
    pub min_at: Option<usize>,
    /// The offset in units of `d` for those that do not (−8 or −16).
    pub offset: f32,
    /// Where the 32-bit mask of fifth bits is (bit `j` for element `j`), for the 5-bit types.
    pub mask_at: Option<usize>,
    /// Where the 16 bytes of nibbles are: byte `j`'s low nibble is element `j`, its high nibble
    /// element `j + 16`.
    pub nibbles_at: usize,
    /// Whether the quants are 32 signed bytes (`Q8_0`) instead of nibbles.
    pub bytes: bool,
}

/// One of the 4-, 5- and 8-bit block types, its layout known when kernels are compiled (so
/// each type's kernel has no branch on it).
pub trait NibbleKind {
    /// Where its blocks keep their fields.
    const LAYOUT: Nibbles;
}

/// `Q4_0`: `d`, 16 bytes of nibbles; `d·(q − 8)`.
pub struct Q4_0;
/// `Q4_1`: `d`, `m`, 16 bytes of nibbles; `d·q + m`.
pub struct Q4_1;
/// `Q5_0`: `d`, the fifth bits, 16 bytes of nibbles; `d·(q − 16)`.
pub struct Q5_0;
/// `Q5_1`: `d`, `m`, the fifth bits, 16 bytes of nibbles; `d·q + m`.
pub struct Q5_1;

/// `Q8_0`: `d`, 32 signed bytes; `d·q`.
pub struct Q8_0;

impl NibbleKind for Q8_0 {
    const LAYOUT: Nibbles =
        Nibbles { dtype: DType::Q8_0, min_at: None, offset: 0.0, mask_at: None, nibbles_at: 2, bytes: true };
}
impl NibbleKind for Q4_0 {
    const LAYOUT: Nibbles =
        Nibbles { dtype: DType::Q4_0, min_at: None, offset: -8.0, mask_at: None, nibbles_at: 2, bytes: false };
}
impl NibbleKind for Q4_1 {
    const LAYOUT: Nibbles =
        Nibbles { dtype: DType::Q4_1, min_at: Some(2), offset: 0.0, mask_at: None, nibbles_at: 4, bytes: false };
}
impl NibbleKind for Q5_0 {
    const LAYOUT: Nibbles =
        Nibbles { dtype: DType::Q5_0, min_at: None, offset: -16.0, mask_at: Some(2), nibbles_at: 6, bytes: false };
}
impl NibbleKind for Q5_1 {
    const LAYOUT: Nibbles =
        Nibbles { dtype: DType::Q5_1, min_at: Some(2), offset: 0.0, mask_at: Some(4), nibbles_at: 8, bytes: false };
}

impl Nibbles {
    /// The layout of `dtype`, if it is one of these types.
    pub fn of(dtype: DType) -> Option<Self> {
        match dtype {
            DType::Q8_0 => Some(Q8_0::LAYOUT),
            DType::Q4_0 => Some(Q4_0::LAYOUT),
            DType::Q4_1 => Some(Q4_1::LAYOUT),
            DType::Q5_0 => Some(Q5_0::LAYOUT),
            DType::Q5_1 => Some(Q5_1::LAYOUT),
            _ => None,
        }
    }

    /// Bytes per block.
    pub const fn size(self) -> usize {
        self.dtype.block_bytes()
    }

    /// The block's fifth bits (zero for the 4-bit types).
    fn mask(self, b: &[u8]) -> u32 {
        self.mask_at.map_or(0, |at| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
    }

    /// The block's `m`, given its scale `d`.
    fn min(self, lut: &F16Table, b: &[u8], d: f32) -> f32 {
        self.min_at.map_or(self.offset * d, |at| half(lut, b, at))
    }
}

/// A row of `Q8_0`, `Q4_0`, `Q4_1`, `Q5_0` or `Q5_1` blocks (`layout`) times 16-bit
/// activations, in plain Rust.
fn q4_row(w: &[u8], x: &Q16Row, lut: &F16Table, layout: Nibbles) -> f32 {
    let mut acc = 0f32;
    for (((b, q), d), s) in w.chunks_exact(layout.size()).zip(x.q.chunks_exact(QK)).zip(&x.d).zip(&x.s) {
        let (lo, hi) = q.split_at(QK / 2);
        if layout.bytes {
            let quants = &b[layout.nibbles_at..layout.nibbles_at + QK];
            let isum: i32 = quants.iter().zip(q).map(|(&w, &x)| i32::from(w as i8) * i32::from(x)).sum();
            acc += half(lut, b, 0) * d * isum as f32;
            continue;
        }
        let nibbles = &b[layout.nibbles_at..layout.nibbles_at + 16];
        let mask = layout.mask(b);
        let fifth = |j: usize| (((mask >> j) & 1) << 4) as i32;
        let mut isum = 0i32;
        for (j, ((&n, &l), &h)) in nibbles.iter().zip(lo).zip(hi).enumerate() {
            let (q_lo, q_hi) = (i32::from(n & 0x0F) | fifth(j), i32::from(n >> 4) | fifth(j + 16));
            isum += q_lo * i32::from(l) + q_hi * i32::from(h);
        }
        let dw = half(lut, b, 0);
        acc += dw * d * isum as f32 + layout.min(lut, b, dw) * s;
    }
    acc
}

/// The f16 at byte `at` of a block, through the lookup table.
fn half(lut: &F16Table, b: &[u8], at: usize) -> f32 {
    lut[usize::from(u16::from_le_bytes([b[at], b[at + 1]]))]
}

/// Every f16 bit pattern as f32 (256 KiB, built once): cheaper than converting per block on
/// CPUs without F16C, and than the run-time feature check on those with it.
fn f16_table() -> &'static F16Table {
    static TABLE: OnceLock<Box<F16Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([0f32; 1 << 16]);
        for (bits, v) in (0..=u16::MAX).zip(table.iter_mut()) {
            *v = half::f16::from_bits(bits).to_f32();
        }
        table
    })
}

/// f32 for each f16 bit pattern; indexing it with a `u16` needs no bounds check.
type F16Table = [f32; 1 << 16];

#[cfg(test)]
mod tests {
    use half::f16;
    use zoo_core::{Bytes, DType, WeightView};

    use super::*;

    fn blocks(dtype: DType, rows: usize, k: usize) -> Vec<u8> {
        if zoo_core::kquant::is_k_quant(dtype) {
            return k_blocks(dtype, rows * k / 256);
        }
        let mut data = Vec::new();
        for blk in 0..rows * k / QK {
            data.extend(f16::from_f32(0.002 + (blk % 7) as f32 * 0.003).to_le_bytes());
            if matches!(dtype, DType::Q4_1 | DType::Q5_1) {
                data.extend(f16::from_f32(-0.01 * (blk % 5) as f32).to_le_bytes());
            }
            let n = match dtype {
                DType::Q8_0 => 32,
                DType::Q5_0 | DType::Q5_1 => 20, // the mask of fifth bits, then the nibbles
                _ => 16,
            };
            data.extend((0..n).map(|i| ((blk * 31 + i * 37 + i * i * 11) % 256) as u8));
        }
        data
    }

    /// `n` K-quant super-blocks of varied bytes, their f16 scales small and finite.
    fn k_blocks(dtype: DType, n: usize) -> Vec<u8> {
        let size = dtype.block_bytes();
        let mut data: Vec<u8> = (0..n * size).map(|i| ((i * 37 + i / 7) % 256) as u8).collect();
        for (blk, block) in data.chunks_exact_mut(size).enumerate() {
            let scale = |v: f32| f16::from_f32(v).to_le_bytes();
            let at = if dtype == DType::Q6_K { vec![208] } else { vec![0, 2] };
            for (i, at) in at.into_iter().enumerate() {
                block[at..at + 2].copy_from_slice(&scale(0.001 + 0.0007 * ((blk + i) % 5) as f32));
            }
        }
        data
    }

    /// Every kernel family up to the cap ([`isa`]: the CPU's, or `ZOO_CPU_KERNELS`'s), with the
    /// 16-bit activations it is given, against the f64 product of the dequantised weights and
    /// those activations.
    #[test]
    fn dots_are_exact_on_the_activations_each_type_sees() {
        // Three groups of four rows for the four-row kernels, then one on its own.
        let (rows, k) = (13, 512);
        let x: Vec<f32> = (0..k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0 + i as f32 * 0.01).collect();
        let levels = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni].into_iter().filter(|&l| l <= isa());
        for level in levels {
            for dtype in
                [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K]
            {
                let data = blocks(dtype, rows, k);
                let row_bytes = data.len() / rows;
                let w = WeightView::new("w", dtype, vec![rows, k], Bytes::from_vec(data.clone())).unwrap().to_f32_vec();
                let act = Activations::new(&x);
                let seen = act.seen();
                for per_call in [1, 2, 4] {
                    let mut got = vec![f32::NAN; rows];
                    rows_dot_with((level, per_call), dtype, &data, row_bytes, &act, &mut got);
                    for (j, g) in got.iter().enumerate() {
                        let w = &w[j * k..(j + 1) * k];
                        let want: f64 = w.iter().zip(&seen).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                        let scale: f64 = w.iter().zip(&seen).map(|(a, b)| f64::from((a * b).abs())).sum();
                        let what = format!("{dtype} {level:?} {per_call} per call, row {j}: {g} vs {want}");
                        assert!((f64::from(*g) - want).abs() <= 1e-5 * scale, "{what}");
                    }
                }
            }
        }
    }

    /// A batched step's tile kernel gives each activation row exactly what the one-row kernels
    /// give it: 1 to 9 activation rows (whole groups of four and leftovers), 13 weight rows,
    /// every block type (the ones without a tile kernel go row by row).
    #[test]
    fn tiles_equal_rows_bit_for_bit() {
        let (rows, k) = (13, 256);
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K] {
            let data = blocks(dtype, rows, k);
            let row_bytes = data.len() / rows;
            for n in 1..=9 {
                let xs: Vec<Vec<f32>> = (0..n)
                    .map(|a| (0..k).map(|i| ((i * 7 + a * 3) % 13) as f32 / 5.0 - 1.2 + a as f32 * 0.1).collect())
                    .collect();
                let acts: Vec<Activations> = xs.iter().map(|x| Activations::new(x)).collect();
                let mut tiled = vec![f32::NAN; n * rows];
                rows_dot_tile(dtype, &data, row_bytes, &acts, &mut tiled);
                for (a, act) in acts.iter().enumerate() {
                    let mut want = vec![f32::NAN; rows];
                    rows_dot(dtype, &data, row_bytes, act, &mut want);
                    let got = &tiled[a * rows..(a + 1) * rows];
                    assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{dtype} n={n} row {a}"
                    );
                }
            }
        }
    }

    /// The AVX2 quantiser gives the plain loop's row bit for bit: ties of the rounding (a block
    /// whose scale is exactly 1), both signs, zeros, NaN, infinities and ordinary values.
    #[test]
    fn every_quantiser_gives_the_same_row() {
        let mut x: Vec<f32> = vec![32767.0, 2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 1.4999999, -0.0, 0.0];
        x.resize(32, 7.25);
        x.extend((0..64).map(|i| (i as f32 * 0.37).sin() * 10f32.powi(i % 7 - 3)));
        x.extend([f32::NAN, 1.0, -2.0, f32::INFINITY].iter().cycle().take(32));
        x.extend([0.0; 32]);
        x.extend((0..32).map(|i| if i == 5 { f32::NAN } else { i as f32 - 16.5 }));
        let plain = Q16Row::quantize_with(Isa::Portable, &x);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for level in [Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni].into_iter().filter(|&l| l <= isa()) {
            let got = Q16Row::quantize_with(level, &x);
            assert_eq!(got.q, plain.q, "{level:?} quants");
            assert_eq!(bits(&got.d), bits(&plain.d), "{level:?} scales");
            assert_eq!(bits(&got.s), bits(&plain.s), "{level:?} sums");
        }
        assert_eq!(&plain.q[..7], &[32767, 3, -3, 4, -4, 1, -1], "half away from zero");
    }

    #[test]
    fn activation_rounding_is_within_half_a_step_per_block() {
        let x: Vec<f32> = (0..96).map(|i| (i as f32 * 0.37).sin() * (1 + i / 32) as f32).collect();
        let q = Q16Row::quantize(&x);
        for (b, (xb, db)) in x.chunks(QK).zip(q.dequantized().chunks(QK)).enumerate() {
            let step = xb.iter().fold(0f32, |m, v| m.max(v.abs())) / 32767.0;
            for (a, e) in xb.iter().zip(db) {
                assert!((a - e).abs() <= 0.5 * step * (1.0 + 1e-6), "block {b}: {a} vs {e}");
            }
        }
        let zeros = Q16Row::quantize(&[0.0; 32]);
        assert_eq!(zeros.dequantized(), vec![0.0; 32], "an all-zero block stays zero, no NaN");
    }
}
