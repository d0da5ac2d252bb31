//! The launch of decode attention (`attention.rs`'s split kernel and its merge), plain or
//! fused with RoPE and the KV write.

use burn::tensor::DType;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use zoo_core::AttentionSpec;

use super::{
    array, attention, empty_like, float, int, max_width, row_stride, rows_aligned, runs_plane_kernels,
    vector_width_up_to,
};
use crate::kernels::{KvView, RowTable};

/// A decode step's new key and value rows (unrotated) and the full RoPE tables, for the fused
/// decode attention.
pub(super) struct NewRows<R: CubeRuntime> {
    pub(super) k: CubeTensor<R>,
    pub(super) v: CubeTensor<R>,
    pub(super) cos: CubeTensor<R>,
    pub(super) sin: CubeTensor<R>,
}

/// Decode attention of `q` over the cache (flash-decoding splits, merged when there are several);
/// with `new`, RoPE of `q` and of the new keys and the cache write happen in the same launch
/// (`decode_split_kernel`'s `fused`), `q` unrotated. `None` where the kernels don't fit.
pub(super) fn decode_launch<R, B>(
    q: CubeTensor<R>,
    kv: &KvView<'_, B>,
    rows: &RowTable<B>,
    spec: &AttentionSpec,
    new: Option<NewRows<R>>,
) -> Option<CubeTensor<R>>
where
    R: CubeRuntime,
    B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>, IntTensorPrimitive = CubeTensor<R>>,
{
    let (n, cols) = (q.meta.shape()[0], q.meta.shape()[1]);
    let hd = spec.head_dim;
    if n == 0 || hd == 0 || cols != spec.n_heads * hd || spec.n_kv_heads != kv.n_kv_heads || kv.k.dims()[1] != hd {
        return None;
    }
    let (k_cache, v_cache) = (float(kv.k), float(kv.v));
    if !runs_plane_kernels(&q.client) {
        return None;
    }
    let width = vector_width_up_to(hd, k_cache.dtype.size(), max_width(&k_cache.client));
    let same_rows = row_stride(&k_cache) == row_stride(&v_cache);
    let head_vectors = hd / width;
    let threads = attention_threads();
    let fits = head_vectors <= threads as usize && rows_aligned(&k_cache, width);
    if !same_rows || !fits || k_cache.dtype != q.dtype || v_cache.dtype != q.dtype {
        return None;
    }
    let (slots, positions) = (int(&rows.slots), int(&rows.positions));
    let out = empty_like(&q, n, cols);
    let keys = spec.window.map_or(rows.bound, |w| w.min(rows.bound)).max(1);
    let split_len = split_len(keys, n * spec.n_heads);
    let splits = keys.div_ceil(split_len);
    let direct = splits == 1;
    // Split statistics for the merge; a single split writes `out` directly and never reads
    // this argument (`out` stands in for it: no allocation).
    let partial = (!direct).then(|| {
        let len = n * spec.n_heads * splits * (hd + 2);
        empty_device_contiguous_dtype(q.client.clone(), q.device.clone(), [len, 1].into(), DType::F32)
    });
    let fused = new.is_some();
    // Unfused, the new-row arguments are placeholders the kernel never reads.
    let new = new.unwrap_or_else(|| NewRows { k: q.clone(), v: q.clone(), cos: q.clone(), sin: q.clone() });
    let dtypes = [q.dtype.into(), slots.dtype.into()];
    let (dtype, client) = (q.dtype, q.client.clone());
    let window = spec.window.map_or(0, |w| w.min(u32::MAX as usize) as u32);
    let cube = CubeDim::new_1d(threads);
    // SAFETY: every row's position is below `room` (the caller reserved the cache); each
    // cube reads only its split's keys, and threads stride over the head's channels; fused,
    // the new rows and the table row of each position were checked by the caller, and only
    // one cube per (row, kv head) writes that position's cache row, which no cube reads.
    unsafe {
        launch!(
            attention::decode_split_kernel,
            &client,
            (CubeCount::new_3d(spec.n_heads as u32, n as u32, splits as u32), cube),
            width,
            array(&q),
            array(&k_cache),
            array(&v_cache),
            array(&slots),
            array(&positions),
            array(&out),
            array(partial.as_ref().unwrap_or(&out)),
            array(&new.k),
            array(&new.v),
            array(&new.cos),
            array(&new.sin),
            array(&k_cache),
            array(&v_cache),
            spec.scale,
            window,
            kv.room as u32,
            split_len as u32,
            row_stride(&q),
            row_stride(&k_cache),
            row_stride(&new.k),
            row_stride(&new.v),
            row_stride(&new.cos),
            spec.n_kv_heads,
            spec.n_heads / spec.n_kv_heads,
            hd,
            head_vectors,
            threads as usize / head_vectors,
            direct,
            fused,
            early_loads(),
            dtypes,
        );
        if !direct {
            launch!(
                attention::combine_kernel,
                &client,
                (CubeCount::new_2d(spec.n_heads as u32, n as u32), cube),
                array(partial.as_ref().unwrap_or(&out)),
                array(&out),
                splits as u32,
                hd,
                dtype.into(),
            );
        }
    }
    Some(out)
}

/// Keys per split of decode attention over `keys` (the step's bucket) for `pairs` (row, query
/// head) pairs: [`attention::SPLIT`], except when there are fewer than [`FEW_PAIRS`] pairs,
/// which would leave most of the GPU idle: then an eighth of the keys, from 64 up, so each head
/// spreads over eight cubes. Measured on an H200 at 200 keys (GPU time per decode step, CUDA
/// graphs): Qwen2.5-0.5B (14 heads) 781 µs against 811 with 512-key splits; Mistral-7B (32
/// heads) 4 404 against 4 215, Qwen2.5-14B (40) 8 851 against 8 771: the merge kernel costs
/// more than the extra cubes give there. `ZOO_ATTENTION_SPLIT` (a power of two from 32 to 512)
/// fixes it, for measuring.
fn split_len(keys: usize, pairs: usize) -> usize {
    static FIXED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let fixed = *FIXED.get_or_init(|| {
        let chosen = std::env::var("ZOO_ATTENTION_SPLIT").ok().and_then(|v| v.parse::<usize>().ok());
        chosen.filter(|&n| n.is_power_of_two() && (32..=attention::SPLIT).contains(&n))
    });
    let short = || if pairs < FEW_PAIRS { keys.div_ceil(8).clamp(64, attention::SPLIT) } else { attention::SPLIT };
    fixed.unwrap_or_else(short)
}

/// (row, head) pairs below which decode attention splits its keys more finely (see [`split_len`]).
const FEW_PAIRS: usize = 32;

/// Threads of a decode attention cube: [`attention::ATTENTION_THREADS`], or
/// `ZOO_ATTENTION_THREADS` (a power of two from 64 to 1 024), for measuring.
fn attention_threads() -> u32 {
    static THREADS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        let chosen = std::env::var("ZOO_ATTENTION_THREADS").ok().and_then(|v| v.parse::<u32>().ok());
        chosen.filter(|n| n.is_power_of_two() && (64..=1024).contains(n)).unwrap_or(attention::ATTENTION_THREADS)
    })
}

/// Whether fused decode attention loads its first key and values before it waits for the q/k/v
/// projection (on unless `ZOO_ATTENTION_EARLY=0`, for measuring).
fn early_loads() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| super::switched_on("ZOO_ATTENTION_EARLY"))
}
