//! The KV-cache write and decode attention over the resident cache.
//!
//! The cache of one layer is `[slots · kv_heads · room, head_dim]`: slot `s`, kv head `h`,
//! position `p` is row `(s · kv_heads + h) · room + p`. Decode attention runs one cube per
//! (row, query head, split of the keys): threads score keys with 16-byte loads, then each
//! thread sums values for its output channels (coalesced reads); a second kernel merges the
//! splits' softmax statistics when a context needs several. Grouped-query heads share their kv
//! head's rows through L2. Row strides come as scalars (see [`super::gemv`] for why).

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use super::elementwise::{cube_max, cube_sum};
use super::first_round::inputs_ready;

/// Threads of a [`causal_softmax_kernel`] cube.
pub(crate) const SOFTMAX_THREADS: u32 = 256;

/// Threads of an attention cube: enough that a decode step's first keys and values, loaded
/// before the kernel waits for its queries (`decode_split_kernel`'s `early`), cover a short
/// context. Measured on an H200 (GPU time per decode step, CUDA graphs, 200 keys): Mistral-7B
/// 3 893 µs at 256 against 3 973 at 128 and 4 066 at 512; Qwen2.5-14B 7 750 against 7 867 and
/// 7 990; Qwen2.5-0.5B 701 against 697 and 711.
pub(crate) const ATTENTION_THREADS: u32 = 256;
/// Keys per split (flash-decoding): long contexts spread over `⌈keys / SPLIT⌉` cubes per head,
/// whose partial results [`combine_kernel`] merges.
pub(crate) const SPLIT: usize = 512;

/// One unit per (row, kv channel): copies `k`, `v` rows into the cache at `(slot, position)`.
#[cube(launch_unchecked)]
pub(crate) fn kv_write_kernel<F: Float, I: Numeric>(
    k: &Array<F>,
    v: &Array<F>,
    slots: &Array<I>,
    positions: &Array<I>,
    k_cache: &mut Array<F>,
    v_cache: &mut Array<F>,
    room: u32,
    rows: u32,
    k_stride: u32,
    v_stride: u32,
    cache_stride: u32,
    #[comptime] n_kv_heads: usize,
    #[comptime] head_dim: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let cols = n_kv_heads * head_dim;
    let i = ABSOLUTE_POS;
    if i >= rows as usize * cols {
        terminate!();
    }
    let row = i / cols;
    let col = i % cols;
    let head = col / head_dim;
    let d = col % head_dim;
    let slot = u32::cast_from(slots[row]) as usize;
    let pos = u32::cast_from(positions[row]) as usize;
    let cache_row = (slot * n_kv_heads + head) * room as usize + pos;
    let dst = cache_row * cache_stride as usize + d;
    k_cache[dst] = k[row * k_stride as usize + col];
    v_cache[dst] = v[row * v_stride as usize + col];
}

/// RoPE of `q` and `k` with the step's table rows, the rotated keys and the values written into
/// the cache at each row's `(slot, position)`, the rotated queries to `q_out` (contiguous): one
/// unit per rotated pair (query pairs first, then key pairs, each carrying the matching value
/// pair).
#[cube(launch_unchecked)]
pub(crate) fn rope_kv_kernel<F: Float, I: Numeric>(
    q: &Array<F>,
    k: &Array<F>,
    v: &Array<F>,
    cos: &Array<F>,
    sin: &Array<F>,
    slots: &Array<I>,
    positions: &Array<I>,
    q_out: &mut Array<F>,
    k_cache: &mut Array<F>,
    v_cache: &mut Array<F>,
    room: u32,
    rows: u32,
    q_stride: u32,
    k_stride: u32,
    v_stride: u32,
    cos_stride: u32,
    sin_stride: u32,
    cache_stride: u32,
    #[comptime] n_heads: usize,
    #[comptime] n_kv_heads: usize,
    #[comptime] head_dim: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let half = head_dim / 2;
    let q_pairs = n_heads * half;
    let per_row = q_pairs + n_kv_heads * half;
    let i = ABSOLUTE_POS;
    if i >= rows as usize * per_row {
        terminate!();
    }
    let row = i / per_row;
    let unit = i % per_row;
    let cs = f32::cast_from(cos[row * cos_stride as usize + unit % half]);
    let sn = f32::cast_from(sin[row * sin_stride as usize + unit % half]);
    if unit < q_pairs {
        let head = unit / half;
        let c = unit % half;
        let at = row * q_stride as usize + head * head_dim + c;
        let x1 = f32::cast_from(q[at]);
        let x2 = f32::cast_from(q[at + half]);
        let out = row * n_heads * head_dim + head * head_dim + c;
        q_out[out] = F::cast_from(x1 * cs - x2 * sn);
        q_out[out + half] = F::cast_from(x2 * cs + x1 * sn);
    } else {
        let pair = unit - q_pairs;
        let head = pair / half;
        let c = pair % half;
        let k_at = row * k_stride as usize + head * head_dim + c;
        let v_at = row * v_stride as usize + head * head_dim + c;
        let x1 = f32::cast_from(k[k_at]);
        let x2 = f32::cast_from(k[k_at + half]);
        let slot = u32::cast_from(slots[row]) as usize;
        let pos = u32::cast_from(positions[row]) as usize;
        let dst = ((slot * n_kv_heads + head) * room as usize + pos) * cache_stride as usize + c;
        k_cache[dst] = F::cast_from(x1 * cs - x2 * sn);
        k_cache[dst + half] = F::cast_from(x2 * cs + x1 * sn);
        v_cache[dst] = v[v_at];
        v_cache[dst + half] = v[v_at + half];
    }
}

/// Vector `c` of a key's score: `Σ query[c · width + l] · key[l]`.
#[cube]
fn vector_score<F: Float, N: Size>(query: &SharedMemory<f32>, key: Vector<F, N>, c: usize) -> f32 {
    let kv = Vector::<f32, N>::cast_from(key);
    let width = kv.size();
    let mut s = 0.0f32;
    #[unroll]
    for l in 0..width {
        s += query[c * width + l] * kv[l];
    }
    s
}

/// One split of one (query head, row)'s keys: scores with 16-byte key loads, the split's
/// softmax statistics, and its weighted sum of values. With `direct` (a single split) it writes
/// the normalised output (contiguous rows); otherwise `(acc[0..hd], max, sum)` to `partial` for
/// [`combine_kernel`].
///
/// With `fused` (decode: one new position per row, each row its own slot) the kernel also does
/// what [`rope_kv_kernel`] would have done before it, so a layer's attention is one launch: it
/// rotates the query (`q` unrotated) and the row's new key (`new_k`) with the RoPE tables `cos`,
/// `sin` (indexed by position), scores the new position against that key held in shared memory instead of the cache, adds its value from
/// `new_v`, and the first query head of each kv head, in the split holding the new position,
/// writes the rotated key and the value into the cache through `k_write` and `v_write`
/// (the cache buffers again, as plain elements). No cube reads that cache row, so the
/// write races with nothing. Rounding matches the unfused path: rotated values are rounded to
/// `F` before use, as the cache and `q_out` would hold them.
///
/// With `early` (fused only), each thread loads its first key and its key lane's first four
/// values before the kernel's `inputs_ready` marker: those cache rows hold positions before the
/// new one, which only earlier steps wrote, so in a replayed graph the loads overlap the q/k/v
/// projection this kernel waits for.
#[cube(launch_unchecked)]
// A comptime branch holding a runtime one is not collapsible: CubeCL expands the first away.
#[allow(clippy::collapsible_if)]
pub(crate) fn decode_split_kernel<F: Float, N: Size, I: Numeric>(
    q: &Array<F>,
    k_cache: &Array<Vector<F, N>>,
    v_cache: &Array<Vector<F, N>>,
    slots: &Array<I>,
    positions: &Array<I>,
    out: &mut Array<F>,
    partial: &mut Array<f32>,
    new_k: &Array<F>,
    new_v: &Array<F>,
    cos: &Array<F>,
    sin: &Array<F>,
    k_write: &mut Array<F>,
    v_write: &mut Array<F>,
    scale: f32,
    window: u32,
    room: u32,
    split_len: u32,
    q_stride: u32,
    cache_stride: u32,
    new_k_stride: u32,
    new_v_stride: u32,
    table_stride: u32,
    #[comptime] n_kv_heads: usize,
    #[comptime] group: usize,
    #[comptime] head_dim: usize,
    #[comptime] head_vectors: usize,
    #[comptime] key_lanes: usize,
    #[comptime] direct: bool,
    #[comptime] fused: bool,
    #[comptime] early: bool,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let head = CUBE_POS_X as usize;
    let row = CUBE_POS_Y as usize;
    let split = CUBE_POS_Z as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
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
    // Fused: the new position's rotated key and its value.
    let mut new_key = SharedMemory::<f32>::new(head_dim);
    let mut new_value = SharedMemory::<f32>::new(head_dim);
    let q_off = row * q_stride as usize + head * head_dim;
    let cur = hi - 1;
    // The split holding the new position: the last one with keys (splits past the keys, which
    // a step's bucket can leave, hold none and take no part).
    let holds_new = end == hi && start < end;
    // Keys of this split read from the cache: all of them, or, fused, all but the new one.
    let mut cached_end = end;
    if fused && holds_new {
        cached_end = cur;
    }
    let width = k_cache.vector_size();
    let row_vectors = cache_stride as usize / width;
    let channel_vector = t % head_vectors;
    let lane = t / head_vectors;
    // Early (fused only: the cache rows before the new one were written by earlier steps, so
    // nothing this step launches writes them): the thread's first key and its key lane's first
    // four values are loaded before the kernel waits for the q/k/v projection.
    let mut first_key = Array::<Vector<F, N>>::new(head_vectors);
    let mut first_values = Array::<Vector<F, N>>::new(4usize);
    let mut first_key_read = false;
    let mut values_read = false;
    if comptime!(early && fused) {
        first_key_read = start + t < cached_end;
        values_read = lane < key_lanes && start + lane + 3 * key_lanes < cached_end;
        if first_key_read {
            let key = (base + start + t) * row_vectors;
            #[unroll]
            for c in 0..head_vectors {
                first_key[c] = k_cache[key + c];
            }
        }
        if values_read {
            let at = (base + start + lane) * row_vectors + channel_vector;
            let step = key_lanes * row_vectors;
            #[unroll]
            for m in 0..4usize {
                first_values[m] = v_cache[at + m * step];
            }
        }
    }
    inputs_ready();
    if fused {
        let half = head_dim / 2;
        let kv_head = head / group;
        let table = cur * table_stride as usize;
        let k_off = row * new_k_stride as usize + kv_head * head_dim;
        let v_off = row * new_v_stride as usize + kv_head * head_dim;
        let writes = holds_new && head % group == 0;
        let dst = (base + cur) * cache_stride as usize;
        let mut c = t;
        while c < half {
            let cs = f32::cast_from(cos[table + c]);
            let sn = f32::cast_from(sin[table + c]);
            let x1 = f32::cast_from(q[q_off + c]);
            let x2 = f32::cast_from(q[q_off + c + half]);
            query[c] = f32::cast_from(F::cast_from(x1 * cs - x2 * sn)) * scale;
            query[c + half] = f32::cast_from(F::cast_from(x2 * cs + x1 * sn)) * scale;
            let k1 = f32::cast_from(new_k[k_off + c]);
            let k2 = f32::cast_from(new_k[k_off + c + half]);
            let r1 = F::cast_from(k1 * cs - k2 * sn);
            let r2 = F::cast_from(k2 * cs + k1 * sn);
            new_key[c] = f32::cast_from(r1);
            new_key[c + half] = f32::cast_from(r2);
            new_value[c] = f32::cast_from(new_v[v_off + c]);
            new_value[c + half] = f32::cast_from(new_v[v_off + c + half]);
            if writes {
                k_write[dst + c] = r1;
                k_write[dst + c + half] = r2;
                v_write[dst + c] = new_v[v_off + c];
                v_write[dst + c + half] = new_v[v_off + c + half];
            }
            c += threads;
        }
    } else {
        let mut d = t;
        while d < head_dim {
            query[d] = f32::cast_from(q[q_off + d]) * scale;
            d += threads;
        }
    }
    sync_cube();

    let mut local_max = f32::new(-3.0e38);
    if fused {
        // The new key's score: the first plane's dot product over shared memory.
        if cached_end < end && t < 32 {
            let mut part = 0.0f32;
            let mut d = t;
            while d < head_dim {
                part += query[d] * new_key[d];
                d += 32;
            }
            let s = plane_sum(part);
            if t == 0 {
                scores[cur - start] = s;
            }
            local_max = s;
        }
    }
    let mut j = start + t;
    if comptime!(early && fused) {
        if first_key_read {
            let mut s = 0.0f32;
            #[unroll]
            for c in 0..head_vectors {
                s += vector_score::<F, N>(&query, first_key[c], c);
            }
            scores[j - start] = s;
            if s > local_max {
                local_max = s;
            }
            j += threads;
        }
    }
    while j < cached_end {
        let key = (base + j) * row_vectors;
        let mut s = 0.0f32;
        #[unroll]
        for c in 0..head_vectors {
            s += vector_score::<F, N>(&query, k_cache[key + c], c);
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

    // Values: thread t sums one vector of channels (`t % head_vectors`) over every
    // `key_lanes`-th key (16-byte loads, four keys' loads in flight per thread: one at a time,
    // a 128-key context cost 16 round trips to memory in a row); the key lanes' partial sums
    // then meet in shared memory.
    let mut sums = SharedMemory::<f32>::new(key_lanes * head_dim);
    if lane < key_lanes {
        let mut acc = Vector::<f32, N>::new(0.0);
        let mut j = start + lane;
        let step = key_lanes * row_vectors;
        if comptime!(early && fused) {
            if values_read {
                #[unroll]
                for m in 0..4usize {
                    let p = scores[j - start + m * key_lanes];
                    acc += Vector::<f32, N>::cast_from(first_values[m]) * Vector::<f32, N>::new(p);
                }
                j += 4 * key_lanes;
            }
        }
        while j + 3 * key_lanes < cached_end {
            let at = (base + j) * row_vectors + channel_vector;
            let v0 = Vector::<f32, N>::cast_from(v_cache[at]);
            let v1 = Vector::<f32, N>::cast_from(v_cache[at + step]);
            let v2 = Vector::<f32, N>::cast_from(v_cache[at + 2 * step]);
            let v3 = Vector::<f32, N>::cast_from(v_cache[at + 3 * step]);
            let p = j - start;
            acc += v0 * Vector::<f32, N>::new(scores[p]);
            acc += v1 * Vector::<f32, N>::new(scores[p + key_lanes]);
            acc += v2 * Vector::<f32, N>::new(scores[p + 2 * key_lanes]);
            acc += v3 * Vector::<f32, N>::new(scores[p + 3 * key_lanes]);
            j += 4 * key_lanes;
        }
        while j < cached_end {
            let v = Vector::<f32, N>::cast_from(v_cache[(base + j) * row_vectors + channel_vector]);
            acc += v * Vector::<f32, N>::new(scores[j - start]);
            j += key_lanes;
        }
        #[unroll]
        for l in 0..width {
            sums[lane * head_dim + channel_vector * width + l] = acc[l];
        }
    }
    sync_cube();

    let heads = CUBE_COUNT_X as usize;
    let mut c = t;
    while c < head_dim {
        let mut acc = 0.0f32;
        for l in 0..key_lanes {
            acc += sums[l * head_dim + c];
        }
        // Only a fused split holding the new position reads from the cache up to before it.
        if cached_end < end {
            acc += scores[cur - start] * new_value[c];
        }
        if direct {
            out[(row * heads + head) * head_dim + c] = F::cast_from(acc / split_sum);
        } else {
            let at = ((row * heads + head) * CUBE_COUNT_Z as usize + split) * (head_dim + 2);
            partial[at + c] = acc;
        }
        c += threads;
    }
    if !direct && t == 0 {
        let at = ((row * heads + head) * CUBE_COUNT_Z as usize + split) * (head_dim + 2);
        partial[at + head_dim] = split_max;
        partial[at + head_dim + 1] = split_sum;
    }
}

/// Merges the splits of each (query head, row): `Σ e^(mᵢ−M) accᵢ / Σ e^(mᵢ−M) lᵢ`; `out`
/// contiguous.
#[cube(launch_unchecked)]
pub(crate) fn combine_kernel<F: Float>(
    partial: &Array<f32>,
    out: &mut Array<F>,
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
        out[(row * heads + head) * head_dim + c] = F::cast_from(acc / total);
        c += CUBE_DIM_X as usize;
    }
}

/// Softmax of prefill attention scores under the causal (and sliding-window) mask, computed
/// from indices instead of an additive mask tensor: one cube per row of `scores` (`[kv_heads ·
/// group · len, past + len]`, rows ordered kv head, query head, query), f32 inside. Query `i`
/// (`row % len`) sits at position `past + i` and sees keys `lo..=past + i`, `lo` the window's
/// first; hidden keys get probability 0. Replaces the mask's construction and addition and
/// Burn's softmax (five passes over the scores) with one read for the maximum, one for the
/// sum and one for the output.
#[cube(launch_unchecked)]
pub(crate) fn causal_softmax_kernel<F: Float>(
    scores: &Array<F>,
    probs: &mut Array<F>,
    cols: u32,
    scores_stride: u32,
    len: u32,
    past: u32,
    window: u32,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let hi = past as usize + row % len as usize + 1;
    let mut lo = 0usize;
    if window > 0 && hi > window as usize {
        lo = hi - window as usize;
    }
    let base = row * scores_stride as usize;
    let mut scratch = SharedMemory::<f32>::new(32usize);
    let mut local_max = f32::new(-3.0e38);
    let mut j = lo + t;
    while j < hi {
        let s = f32::cast_from(scores[base + j]);
        if s > local_max {
            local_max = s;
        }
        j += threads;
    }
    let best = cube_max(local_max, &mut scratch);
    let mut local_sum = 0.0f32;
    let mut j = lo + t;
    while j < hi {
        local_sum += f32::exp(f32::cast_from(scores[base + j]) - best);
        j += threads;
    }
    let total = cube_sum(local_sum, &mut scratch);
    let out = row * cols as usize;
    let mut j = t;
    while j < cols as usize {
        let mut p = 0.0f32;
        if j >= lo && j < hi {
            p = f32::exp(f32::cast_from(scores[base + j]) - best) / total;
        }
        probs[out + j] = F::cast_from(p);
        j += threads;
    }
}
