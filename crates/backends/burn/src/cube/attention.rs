//! The KV-cache write and decode attention over the resident cache.
//!
//! The cache of one layer is `[slots · kv_heads · room, head_dim]`: slot `s`, kv head `h`,
//! position `p` is row `(s · kv_heads + h) · room + p`. Decode attention runs one cube per
//! (row, query head): it reads its kv head's keys in chunks, keeps a running maximum and sum
//! (online softmax), and each thread owns one or two output channels, so value reads are
//! coalesced. Grouped-query heads share their kv head's rows through L2.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use super::elementwise::{cube_max, cube_sum};

/// Threads of an attention cube (one output channel each; two when `head_dim` > 128).
pub(crate) const ATTENTION_THREADS: u32 = 128;
/// Keys scored per chunk (their scores sit in shared memory).
pub(crate) const CHUNK: usize = 2048;

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

#[cube(launch_unchecked)]
pub(crate) fn decode_attention_kernel<F: Float, I: Numeric>(
    q: &Tensor<F>,
    k_cache: &Tensor<F>,
    v_cache: &Tensor<F>,
    slots: &Tensor<I>,
    positions: &Tensor<I>,
    out: &mut Tensor<F>,
    scale: f32,
    window: u32,
    room: u32,
    #[comptime] n_kv_heads: usize,
    #[comptime] group: usize,
    #[comptime] head_dim: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let head = CUBE_POS_X as usize;
    let row = CUBE_POS_Y as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let kv_head = head / group;
    let slot = u32::cast_from(slots[row]) as usize;
    let hi = u32::cast_from(positions[row]) as usize + 1;
    let mut lo = 0usize;
    if window > 0 && hi > window as usize {
        lo = hi - window as usize;
    }
    let base = (slot * n_kv_heads + kv_head) * room as usize;

    let mut query = SharedMemory::<f32>::new(head_dim);
    let mut scores = SharedMemory::<f32>::new(CHUNK);
    let mut scratch = SharedMemory::<f32>::new(32usize);
    let q_off = row * q.stride(0) + head * head_dim;
    let mut d = t;
    while d < head_dim {
        query[d] = f32::cast_from(q[q_off + d]) * scale;
        d += threads;
    }
    sync_cube();

    let mut running_max = f32::new(-3.0e38);
    let mut running_sum = f32::new(0.0);
    let mut acc0 = 0.0f32;
    let mut acc1 = 0.0f32;
    let c1_channel = t + threads;
    let mut start = lo;
    while start < hi {
        let mut end = start + CHUNK;
        if end > hi {
            end = hi;
        }
        let mut local_max = f32::new(-3.0e38);
        let mut j = start + t;
        while j < end {
            let key = (base + j) * k_cache.stride(0);
            let mut s = 0.0f32;
            for c in 0..head_dim {
                s += query[c] * f32::cast_from(k_cache[key + c]);
            }
            scores[j - start] = s;
            if s > local_max {
                local_max = s;
            }
            j += threads;
        }
        let chunk_max = cube_max(local_max, &mut scratch);
        let mut new_max = running_max;
        if chunk_max > new_max {
            new_max = chunk_max;
        }
        let correction = f32::exp(running_max - new_max);
        let mut local_sum = 0.0f32;
        let mut j = start + t;
        while j < end {
            let p = f32::exp(scores[j - start] - new_max);
            scores[j - start] = p;
            local_sum += p;
            j += threads;
        }
        let chunk_sum = cube_sum(local_sum, &mut scratch);
        running_sum = running_sum * correction + chunk_sum;
        acc0 *= correction;
        acc1 *= correction;
        if t < head_dim {
            for j in start..end {
                acc0 += scores[j - start] * f32::cast_from(v_cache[(base + j) * v_cache.stride(0) + t]);
            }
        }
        if c1_channel < head_dim {
            for j in start..end {
                acc1 += scores[j - start] * f32::cast_from(v_cache[(base + j) * v_cache.stride(0) + c1_channel]);
            }
        }
        running_max = new_max;
        sync_cube();
        start = end;
    }
    let o_off = row * out.stride(0) + head * head_dim;
    if t < head_dim {
        out[o_off + t] = F::cast_from(acc0 / running_sum);
    }
    if c1_channel < head_dim {
        out[o_off + c1_channel] = F::cast_from(acc1 / running_sum);
    }
}
