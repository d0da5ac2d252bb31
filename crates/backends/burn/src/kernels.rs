//! Fused kernels a Burn backend may provide in place of compositions of Burn ops.
//!
//! Every method returns `None` when the backend has no kernel for the case at hand (or the
//! shapes fall outside what the kernel supports); the caller then composes Burn ops, which is
//! what CPU backends (burn-ndarray) always do. CubeCL backends (`cuda`) implement them in
//! [`crate::cube`]; the decode step then runs about a dozen kernels per layer instead of sixty.

use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{Int, Tensor};
use zoo_core::Qkv;

/// Where one row of a decode step reads and writes the KV cache.
pub struct RowTable<BB: BurnBackend> {
    /// The token id of each row.
    pub tokens: Tensor<BB, 1, Int>,
    /// The KV-cache slot of each row.
    pub slots: Tensor<BB, 1, Int>,
    /// The absolute position of each row.
    pub positions: Tensor<BB, 1, Int>,
    /// The most keys a row attends to (the largest position plus one) rounded up to its bucket
    /// ([`key_bound`]): what kernels size their grids and tables by, so that every decode step
    /// of a bucket launches the same work (a recorded step replays for all of them).
    pub bound: usize,
}

/// The (index, value) of each of `rows` rows from the bytes of [`Kernels::argmax_launch`]'s
/// output.
pub fn picks(bytes: &[u8], rows: usize) -> Vec<(u32, f32)> {
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    values.chunks_exact(2).take(rows).map(|p| (p[0] as u32, p[1])).collect()
}

/// The bucket of a step whose rows attend to at most `extent` keys: the next power of two, at
/// least 512.
pub fn key_bound(extent: usize) -> usize {
    extent.max(1).next_power_of_two().max(512)
}

/// One layer's KV cache as kernels see it: `[slots · kv_heads · room, head_dim]` each.
pub struct KvView<'a, BB: BurnBackend> {
    /// Keys.
    pub k: &'a Tensor<BB, 2>,
    /// Values.
    pub v: &'a Tensor<BB, 2>,
    /// Positions per (slot, kv head).
    pub room: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
}

/// An RMSNorm a GEMV applies to each input row on the fly, `x / sqrt(mean(x²) + eps) · weight`
/// (no weight: ×1): the norm before a projection costs no launch of its own.
pub struct RowNorm<'a, BB: BurnBackend> {
    /// The learned scale, `[1, in]`.
    pub weight: Option<&'a Tensor<BB, 2>>,
    /// Added to the mean square.
    pub eps: f32,
}

/// Optional fused kernels of a Burn backend; see the module docs.
pub trait Kernels: BurnBackend {
    /// Kernels zoo has launched so far on a backend that has kernels of its own: each fused
    /// kernel and each cuBLAS call once (Burn's own ops, which the GPU step avoids, are not
    /// counted); `None` on backends without kernels.
    fn launches() -> Option<u64> {
        None
    }

    /// Runs `f` (a step over `rows` token rows) where its launches cost least (callers learn
    /// whether it ran from what `f` leaves). The default calls `f` here; see the CubeCL
    /// backends' for when they move it.
    fn scoped(_device: &Self::Device, _rows: usize, f: &mut (dyn FnMut() + Send)) {
        f()
    }

    /// Called with each forward step's row table once it is uploaded (a step being recorded
    /// for replay notes its input buffers).
    fn step_prepared(_rows: &RowTable<Self>) {}

    /// Rows `ids` of `table` (the token embedding, ids read on the device); `None` when the
    /// backend has no such kernel.
    fn embed_rows(_table: &Tensor<Self, 2>, _ids: &Tensor<Self, 1, Int>) -> Option<Tensor<Self, 2>> {
        None
    }

    /// Launches the argmax of each row of `logits: [rows, vocab]` without reading it back: a
    /// `[rows · 2, 1]` f32 tensor of (index, value) per row; `None` when the backend has no
    /// such kernel.
    fn argmax_launch(_logits: &Tensor<Self, 2>) -> Option<Tensor<Self, 2>> {
        None
    }

    /// Each row's largest value of `logits: [rows, vocab]` and its index (the first on ties),
    /// picked on the device; `None` when the backend has no such kernel.
    fn argmax_rows(_logits: &Tensor<Self, 2>) -> Option<Vec<(u32, f32)>> {
        None
    }

    /// `residual + norm(x) · wᵀ (+ bias)` for a few rows of `x: [n, in]` against `w: [out, in]`
    /// (`norm` and `residual` each when given), reading each weight once (decode is bound by
    /// weight bytes).
    fn gemv(
        _x: &Tensor<Self, 2>,
        _w: &Tensor<Self, 2>,
        _bias: Option<&Tensor<Self, 2>>,
        _norm: Option<&RowNorm<'_, Self>>,
        _residual: Option<&Tensor<Self, 2>>,
    ) -> Option<Tensor<Self, 2>> {
        None
    }

    /// Several `norm(x) · wᵢᵀ (+ bᵢ)` of one input in one launch (q, k and v: three layers).
    fn gemv_many(
        _x: &Tensor<Self, 2>,
        _norm: Option<&RowNorm<'_, Self>>,
        _layers: &[(&Tensor<Self, 2>, Option<&Tensor<Self, 2>>)],
    ) -> Option<Vec<Tensor<Self, 2>>> {
        None
    }

    /// `silu(norm(x) · gateᵀ) · (norm(x) · upᵀ)` for a few rows, both weights read in one pass.
    fn gated_gemv(
        _x: &Tensor<Self, 2>,
        _norm: Option<&RowNorm<'_, Self>>,
        _gate: &Tensor<Self, 2>,
        _up: &Tensor<Self, 2>,
    ) -> Option<Tensor<Self, 2>> {
        None
    }

    /// `(x + residual, rms_norm(x + residual) · weight)` in one pass.
    fn add_rms_norm(
        _x: &Tensor<Self, 2>,
        _residual: &Tensor<Self, 2>,
        _weight: Option<&Tensor<Self, 2>>,
        _eps: f32,
    ) -> Option<(Tensor<Self, 2>, Tensor<Self, 2>)> {
        None
    }

    /// Rotates `q` and `k` by the step's table rows (`table_rows`: `cos, sin`, each
    /// `[n, head_dim / 2]`), writes the rotated keys and the values `v` into the cache at each
    /// row's slot and position, and returns the rotated queries.
    fn rope_kv_write(
        _qkv: Qkv<'_, Tensor<Self, 2>>,
        _table_rows: (&Tensor<Self, 2>, &Tensor<Self, 2>),
        _kv: &KvView<'_, Self>,
        _rows: &RowTable<Self>,
        _spec: &zoo_core::AttentionSpec,
    ) -> Option<Tensor<Self, 2>> {
        None
    }

    /// Decode attention (one new position per row, each row its own slot) with RoPE and the
    /// KV write in the same launch: rotates `q` and `k` by the rows of `tables` (`cos, sin`, each
    /// `[positions, head_dim / 2]`, indexed by each row's position), writes the rotated keys and
    /// the values `v` into the cache, and attends each rotated query over its slot.
    fn rope_decode_attention(
        _qkv: Qkv<'_, Tensor<Self, 2>>,
        _tables: (&Tensor<Self, 2>, &Tensor<Self, 2>),
        _kv: &KvView<'_, Self>,
        _rows: &RowTable<Self>,
        _spec: &zoo_core::AttentionSpec,
    ) -> Option<Tensor<Self, 2>> {
        None
    }

    /// Softmax of one span's prefill attention scores (`[kv_heads · group · len, past + len]`,
    /// rows ordered kv head, query head, query; `span.len` queries at positions `past..`)
    /// under the causal mask and the sliding `window`, hidden keys at probability 0.
    fn causal_softmax(
        _scores: &Tensor<Self, 2>,
        _span: &zoo_core::SeqSpan,
        _window: Option<usize>,
    ) -> Option<Tensor<Self, 2>> {
        None
    }

    /// RMSNorm of each row of `x: [n, d]`, times `weight` when given.
    fn rms_norm(_x: &Tensor<Self, 2>, _weight: Option<&Tensor<Self, 2>>, _eps: f32) -> Option<Tensor<Self, 2>> {
        None
    }

    /// `silu(gate) · up`, elementwise.
    fn silu_mul(_gate: &Tensor<Self, 2>, _up: &Tensor<Self, 2>) -> Option<Tensor<Self, 2>> {
        None
    }

    /// Rotary embedding of `x: [n, heads · head_dim]` with the step's rows of the tables,
    /// `cos, sin: [n, head_dim / 2]` (the convention's sign already in `sin`).
    fn rope(
        _x: &Tensor<Self, 2>,
        _cos: &Tensor<Self, 2>,
        _sin: &Tensor<Self, 2>,
        _head_dim: usize,
    ) -> Option<Tensor<Self, 2>> {
        None
    }

    /// Writes the rows of `k, v: [n, kv_heads · head_dim]` into the cache at each row's slot
    /// and position, in place. Returns `false` when the backend has no such kernel.
    fn kv_write(_kv: &KvView<'_, Self>, _k: &Tensor<Self, 2>, _v: &Tensor<Self, 2>, _rows: &RowTable<Self>) -> bool {
        false
    }

    /// Attention of one query row per sequence (`q: [n, heads · head_dim]`) over each row's
    /// cached keys `lo..=position` (`lo` from the sliding `window`, if any).
    fn decode_attention(
        _q: &Tensor<Self, 2>,
        _kv: &KvView<'_, Self>,
        _rows: &RowTable<Self>,
        _spec: &zoo_core::AttentionSpec,
    ) -> Option<Tensor<Self, 2>> {
        None
    }
}

#[cfg(feature = "ndarray")]
impl Kernels for burn::backend::NdArray<f32> {}

/// Training differentiates Burn's own ops: no fused kernels, whatever the inner backend has.
#[cfg(feature = "autodiff")]
impl<BB: Kernels, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> Kernels
    for burn::backend::Autodiff<BB, C>
{
    fn scoped(device: &Self::Device, rows: usize, f: &mut (dyn FnMut() + Send)) {
        BB::scoped(device, rows, f)
    }
}

#[cfg(test)]
mod tests {
    use super::{key_bound, picks};

    #[test]
    fn key_bounds_are_powers_of_two_from_512() {
        for (extent, bound) in [(0, 512), (1, 512), (512, 512), (513, 1024), (1024, 1024), (1025, 2048), (5000, 8192)] {
            assert_eq!(key_bound(extent), bound, "extent {extent}");
        }
        // Every extent of a bucket has the same bound, and the bound covers it.
        assert!((1025..=2048).all(|e| key_bound(e) == 2048 && e <= 2048));
    }

    #[test]
    fn picks_read_index_and_value_per_row() {
        let bytes: Vec<u8> = [3.0f32, 0.5, 7.0, -1.0, 99.0, 99.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(picks(&bytes, 2), [(3, 0.5), (7, -1.0)]);
    }
}
