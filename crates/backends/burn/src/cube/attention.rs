//! The KV-cache write and decode attention over the resident cache.
//!
//! The cache of one layer is `[slots · kv_heads · room, head_dim]`: slot `s`, kv head `h`,
//! position `p` is row `(s · kv_heads + h) · room + p`. Decode attention runs one cube per
//! (row, query head, split of the keys): threads score keys with 16-byte loads, then each
//! thread sums values for its output channels (coalesced reads); a second kernel merges the
//! splits' softmax statistics when a context needs several. Grouped-query heads share their kv
//! head's rows through L2.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use super::elementwise::{cube_max, cube_sum};

/// Threads of an attention cube.
pub(crate) const ATTENTION_THREADS: u32 = 128;
/// Keys per split (flash-decoding): long contexts spread over `⌈keys / SPLIT⌉` cubes per head,
/// whose partial results [`combine_kernel`] merges.
pub(crate) const SPLIT: usize = 512;

/// One unit per (row, kv channel): copies `k`, `v` rows into the cache at `(slot, position)`.
#[cube(launch_unchecked)]
pub(crate) fn kv_write_kernel<F: Float, I: Numeric>(
    k: &Tensor<F>,
    v: &Tensor<F>,
    slots: &Tensor<I>,
    positions: &Tensor<I>,
    k_cache: &mut Tensor<F>,
    v_cache: &mut Tensor<F>,
    room: u32,
    #[comptime] n_kv_heads: usize,
    #[comptime] head_dim: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let cols = n_kv_heads * head_dim;
    let i = ABSOLUTE_POS;
    if i >= k.shape(0) * cols {
        terminate!();
    }
    let row = i / cols;
    let col = i % cols;
    let head = col / head_dim;
    let d = col % head_dim;
    let slot = u32::cast_from(slots[row]) as usize;
    let pos = u32::cast_from(positions[row]) as usize;
    let cache_row = (slot * n_kv_heads + head) * room as usize + pos;
    k_cache[cache_row * k_cache.stride(0) + d] = k[row * k.stride(0) + col];
    v_cache[cache_row * v_cache.stride(0) + d] = v[row * v.stride(0) + col];
}

/// RoPE of `q` and `k` with the step's table rows, the rotated keys and the values written into
/// the cache at each row's `(slot, position)`, the rotated queries to `q_out`: one unit per
/// rotated pair (query pairs first, then key pairs, each carrying the matching value pair).
#[cube(launch_unchecked)]
pub(crate) fn rope_kv_kernel<F: Float, I: Numeric>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    cos: &Tensor<F>,
    sin: &Tensor<F>,
    slots: &Tensor<I>,
    positions: &Tensor<I>,
    q_out: &mut Tensor<F>,
    k_cache: &mut Tensor<F>,
    v_cache: &mut Tensor<F>,
    room: u32,
    #[comptime] n_heads: usize,
    #[comptime] n_kv_heads: usize,
    #[comptime] head_dim: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let half = head_dim / 2;
    let q_pairs = n_heads * half;
    let per_row = q_pairs + n_kv_heads * half;
    let i = ABSOLUTE_POS;
    if i >= q.shape(0) * per_row {
        terminate!();
    }
    let row = i / per_row;
    let unit = i % per_row;
    let cs = f32::cast_from(cos[row * cos.stride(0) + unit % half]);
    let sn = f32::cast_from(sin[row * sin.stride(0) + unit % half]);
    if unit < q_pairs {
        let head = unit / half;
        let c = unit % half;
        let at = row * q.stride(0) + head * head_dim + c;
        let x1 = f32::cast_from(q[at]);
        let x2 = f32::cast_from(q[at + half]);
        let out = row * q_out.stride(0) + head * head_dim + c;
        q_out[out] = F::cast_from(x1 * cs - x2 * sn);
        q_out[out + half] = F::cast_from(x2 * cs + x1 * sn);
    } else {
        let pair = unit - q_pairs;
        let head = pair / half;
        let c = pair % half;
        let k_at = row * k.stride(0) + head * head_dim + c;
        let v_at = row * v.stride(0) + head * head_dim + c;
        let x1 = f32::cast_from(k[k_at]);
        let x2 = f32::cast_from(k[k_at + half]);
        let slot = u32::cast_from(slots[row]) as usize;
        let pos = u32::cast_from(positions[row]) as usize;
        let cache_row = (slot * n_kv_heads + head) * room as usize + pos;
        let k_dst = cache_row * k_cache.stride(0) + c;
        let v_dst = cache_row * v_cache.stride(0) + c;
        k_cache[k_dst] = F::cast_from(x1 * cs - x2 * sn);
        k_cache[k_dst + half] = F::cast_from(x2 * cs + x1 * sn);
        v_cache[v_dst] = v[v_at];
        v_cache[v_dst + half] = v[v_at + half];
    }
}

/// One split of one (query head, row)'s keys: scores with 16-byte key loads, the split's
/// softmax statistics, and its weighted sum of values. With `direct` (a single split) it writes
/// the normalised output; otherwise `(acc[0..hd], max, sum)` to `partial` for
/// [`combine_kernel`].
#[cube(launch_unchecked)]
pub(crate) fn decode_split_kernel<F: Float, N: Size, I: Numeric>(
    q: &Tensor<F>,
    k_cache: &Tensor<Vector<F, N>>,
    v_cache: &Tensor<F>,
    slots: &Tensor<I>,
    positions: &Tensor<I>,
    out: &mut Tensor<F>,
    partial: &mut Tensor<f32>,
    scale: f32,
    window: u32,
    room: u32,
    split_len: u32,
    #[comptime] n_kv_heads: usize,
    #[comptime] group: usize,
    #[comptime] head_dim: usize,
    #[comptime] head_vectors: usize,
    #[comptime] direct: bool,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let head = CUBE_POS_X as usize;
    let row = CUBE_POS_Y as usize;
    let split = CUBE_POS_Z as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let width = k_cache.vector_size();
    let slot = u32::cast_from(slots[row]) as usize;
    let hi = u32::cast_from(positions[row]) as usize + 1;
    let mut lo = 0usize;
    if window > 0 && hi > window as usize {
        lo = hi - window as usize;
    }
    let mut start = lo + split * split_len as usize;
    if start > hi {
        start = hi;
    }
    let mut end = start + split_len as usize;
    if end > hi {
        end = hi;
    }
    let base = (slot * n_kv_heads + head / group) * room as usize;

    let mut query = SharedMemory::<f32>::new(head_dim);
    let mut scores = SharedMemory::<f32>::new(SPLIT);
    let mut scratch = SharedMemory::<f32>::new(32usize);
    let q_off = row * q.stride(0) + head * head_dim;
    let mut d = t;
    while d < head_dim {
        query[d] = f32::cast_from(q[q_off + d]) * scale;
        d += threads;
    }
    sync_cube();

    let k_row_vectors = k_cache.stride(0) / width;
    let mut local_max = f32::new(-3.0e38);
    let mut j = start + t;
    while j < end {
        let key = (base + j) * k_row_vectors;
        let mut s = 0.0f32;
        #[unroll]
        for c in 0..head_vectors {
            let kv = Vector::<f32, N>::cast_from(k_cache[key + c]);
            #[unroll]
            for l in 0..width {
                s += query[c * width + l] * kv[l];
            }
        }
        scores[j - start] = s;
        if s > local_max {
            local_max = s;
        }
        j += threads;
    }
    let split_max = cube_max(local_max, &mut scratch);
    let mut local_sum = 0.0f32;
    let mut j = start + t;
    while j < end {
        let p = f32::exp(scores[j - start] - split_max);
        scores[j - start] = p;
        local_sum += p;
        j += threads;
    }
    let split_sum = cube_sum(local_sum, &mut scratch);

    let v_stride = v_cache.stride(0);
    let mut c = t;
    while c < head_dim {
        let mut acc = 0.0f32;
        for j in start..end {
            acc += scores[j - start] * f32::cast_from(v_cache[(base + j) * v_stride + c]);
        }
        if direct {
            out[row * out.stride(0) + head * head_dim + c] = F::cast_from(acc / split_sum);
        } else {
            let at = ((row * CUBE_COUNT_X as usize + head) * CUBE_COUNT_Z as usize + split) * (head_dim + 2);
            partial[at + c] = acc;
        }
        c += threads;
    }
    if !direct && t == 0 {
        let at = ((row * CUBE_COUNT_X as usize + head) * CUBE_COUNT_Z as usize + split) * (head_dim + 2);
        partial[at + head_dim] = split_max;
        partial[at + head_dim + 1] = split_sum;
    }
}

/// Merges the splits of each (query head, row): `Σ e^(mᵢ−M) accᵢ / Σ e^(mᵢ−M) lᵢ`.
#[cube(launch_unchecked)]
pub(crate) fn combine_kernel<F: Float>(
    partial: &Tensor<f32>,
    out: &mut Tensor<F>,
    splits: u32,
    #[comptime] head_dim: usize,
    #[define(F)] _dtype: StorageType,
) {
    let head = CUBE_POS_X as usize;
    let row = CUBE_POS_Y as usize;
    let heads = CUBE_COUNT_X as usize;
    let first = (row * heads + head) * splits as usize;
    let mut best = f32::new(-3.0e38);
    for s in 0..splits as usize {
        let m = partial[(first + s) * (head_dim + 2) + head_dim];
        if m > best {
            best = m;
        }
    }
    let mut total = 0.0f32;
    for s in 0..splits as usize {
        let at = (first + s) * (head_dim + 2);
        total += f32::exp(partial[at + head_dim] - best) * partial[at + head_dim + 1];
    }
    let mut c = UNIT_POS_X as usize;
    while c < head_dim {
        let mut acc = 0.0f32;
        for s in 0..splits as usize {
            let at = (first + s) * (head_dim + 2);
            acc += f32::exp(partial[at + head_dim] - best) * partial[at + c];
        }
        out[row * out.stride(0) + head * head_dim + c] = F::cast_from(acc / total);
        c += CUBE_DIM_X as usize;
    }
}
