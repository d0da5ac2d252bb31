//! Causal attention over a KV cache held as Burn tensors: one `[slots · kv_heads · room,
//! head_dim]` buffer each for keys and values per layer, written in place (the buffers are
//! uniquely owned, so Burn's `slice_assign` and zoo's kernels write into them without a copy).
//! Sizing follows [`KvGrowth`]: where the device reports room for it (burn-cuda), every slot's
//! full capacity is allocated when the cache is made, so addresses never change; elsewhere the
//! buffers double up to the capacity, so addresses change a logarithmic number of times.
//!
//! Decode steps (one new token per sequence) run [`Kernels::decode_attention`] where the
//! backend has it; prefill runs Burn's matmuls per sequence with the step's cached masks.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{Int, Tensor};
use zoo_core::{AttentionSpec, KvGrowth, KvSpec, Qkv, Result, SeqSpan, TensorShape};

use crate::kernels::{Kernels, KvView};
use crate::step::BurnStep;
use crate::tensor::BurnTensor;
use crate::BatchedMatmul;

/// Where the full capacity is not allocated up front: 256 positions per slot at the first
/// write, then doubled as needed.
pub(crate) const DOUBLING: KvGrowth = KvGrowth::Double { min: 256 };

/// One layer's keys and values for every slot.
pub struct BurnKv<BB: BurnBackend> {
    spec: KvSpec,
    growth: KvGrowth,
    room: usize,
    buffers: Option<(Tensor<BB, 2>, Tensor<BB, 2>)>,
    /// The device's batched product for prefill attention over these buffers, if it has one.
    products: Option<BatchedMatmul<BB>>,
}

impl<BB: BurnBackend> BurnKv<BB> {
    /// An empty cache that sizes its buffers by `growth` at the first write.
    pub(crate) fn new(spec: &KvSpec, growth: KvGrowth) -> Self {
        Self { spec: *spec, growth, room: 0, buffers: None, products: None }
    }

    /// A cache holding every slot's full capacity from the start, in `keys` and `values`
    /// (`[slots · kv_heads · capacity, head_dim]` each, zeroed).
    pub(crate) fn full(spec: &KvSpec, keys: Tensor<BB, 2>, values: Tensor<BB, 2>) -> Self {
        Self { spec: *spec, growth: KvGrowth::Full, room: spec.capacity, buffers: Some((keys, values)), products: None }
    }

    /// The same cache, attending prefills with `products` where it gives a result.
    pub(crate) fn with_products(mut self, products: Option<BatchedMatmul<BB>>) -> Self {
        self.products = products;
        self
    }

    /// Makes room for `needed` positions per slot, keeping what is cached.
    fn reserve(&mut self, needed: usize, like: &Tensor<BB, 2>) {
        if self.buffers.is_some() && needed <= self.room {
            return;
        }
        let (heads, hd) = (self.spec.slots * self.spec.n_kv_heads, self.spec.head_dim);
        let room = self.growth.room(needed, self.room, self.spec.capacity);
        let zeros = || Tensor::<BB, 3>::zeros([heads, room, hd], (&like.device(), like.dtype()));
        let grow = |old: Tensor<BB, 2>| {
            let old = old.reshape([heads, self.room, hd]);
            zeros().slice_assign([0..heads, 0..self.room, 0..hd], old).reshape([heads * room, hd])
        };
        self.buffers = Some(match self.buffers.take() {
            None => (zeros().reshape([heads * room, hd]), zeros().reshape([heads * room, hd])),
            Some((k, v)) => (grow(k), grow(v)),
        });
        self.room = room;
    }

    fn view(&self) -> Option<KvView<'_, BB>> {
        let (k, v) = self.buffers.as_ref()?;
        Some(KvView { k, v, room: self.room, n_kv_heads: self.spec.n_kv_heads })
    }

    /// Writes each span's new rows at `past..past+len` of its slot.
    fn write(&mut self, k: &Tensor<BB, 2>, v: &Tensor<BB, 2>, spans: &[SeqSpan], step: Option<&BurnStep<BB>>)
    where
        BB: Kernels,
    {
        if let (Some(view), Some(step)) = (self.view(), step) {
            if BB::kv_write(&view, k, v, &step.rows) {
                return;
            }
        }
        let (nkv, hd, room) = (self.spec.n_kv_heads, self.spec.head_dim, self.room);
        let heads = self.spec.slots * nkv;
        let (mut keys, mut values) = self.buffers.take().expect("reserved before writing");
        for span in spans {
            let rows = span.start..span.start + span.len;
            let at = [span.slot * nkv..(span.slot + 1) * nkv, span.past..span.past + span.len, 0..hd];
            // (len, nKV·hd) → (nKV, len, hd), written in place.
            let new_k = k.clone().slice([rows.clone(), 0..nkv * hd]).reshape([span.len, nkv, hd]).swap_dims(0, 1);
            let new_v = v.clone().slice([rows, 0..nkv * hd]).reshape([span.len, nkv, hd]).swap_dims(0, 1);
            keys = keys.reshape([heads, room, hd]).slice_assign(at.clone(), new_k).reshape([heads * room, hd]);
            values = values.reshape([heads, room, hd]).slice_assign(at, new_v).reshape([heads * room, hd]);
        }
        self.buffers = Some((keys, values));
    }

    /// Keys and values `(nKV, total, hd)` of `slot`'s first `total` positions.
    fn slot(&self, slot: usize, total: usize) -> (Tensor<BB, 3>, Tensor<BB, 3>) {
        let (nkv, hd, room) = (self.spec.n_kv_heads, self.spec.head_dim, self.room);
        let heads = self.spec.slots * nkv;
        let (k, v) = self.buffers.as_ref().expect("written before reading");
        let pick = |t: &Tensor<BB, 2>| {
            t.clone().reshape([heads, room, hd]).slice([slot * nkv..(slot + 1) * nkv, 0..total, 0..hd])
        };
        (pick(k), pick(v))
    }
}

impl<BB: Kernels> BurnKv<BB> {
    /// `softmax(q · kᵀ · scale, masked) · v` for queries grouped by kv head, `(heads, g·len, hd)`
    /// against keys and values `(heads, T, hd)`: the products through the device's BLAS where
    /// it has one, else Burn's matmul; span `index`'s mask (`like` gives its device and type).
    fn weigh(
        &self,
        Qkv { q, k, v }: Qkv<'_, Tensor<BB, 3>>,
        (index, span): (usize, &SeqSpan),
        spec: &AttentionSpec,
        step: Option<&BurnStep<BB>>,
        like: &Tensor<BB, 2>,
    ) -> Tensor<BB, 3> {
        let scores = self.products.and_then(|product| product(q, k, true, spec.scale));
        let scores = scores.unwrap_or_else(|| q.clone().matmul(k.clone().swap_dims(1, 2)).mul_scalar(spec.scale));
        let probs = probabilities(scores, span, index, spec, step, like);
        let out = self.products.and_then(|product| product(&probs, v, false, 1.0));
        out.unwrap_or_else(|| probs.matmul(v.clone()))
    }
}

pub(crate) fn attention<BB: Kernels>(
    qkv: Qkv<'_, BurnTensor<BB>>,
    kv: &mut BurnKv<BB>,
    spans: &[SeqSpan],
    spec: &AttentionSpec,
    step: Option<&BurnStep<BB>>,
) -> Result<BurnTensor<BB>> {
    validate(qkv, kv, spans, spec)?;
    kv.write(&qkv.k.t, &qkv.v.t, spans, step);
    if let Some(len) = fresh_equal_spans(spans) {
        return Ok(attend_fresh(qkv.map(|t| &t.t), kv, len, spans, spec, step));
    }
    attend(&qkv.q.t, kv, spans, spec, step)
}

/// RoPE, the KV write and attention through the backend's fused kernels: a decode step in one
/// kernel ([`Kernels::rope_decode_attention`], the RoPE `tables` indexed by position), any other
/// step as RoPE fused with the KV write (the step's rows of the tables, from `table_rows`) then
/// attention; `None` when the backend has no fused kernel for these shapes.
pub(crate) fn rope_attention<BB: Kernels>(
    qkv: Qkv<'_, BurnTensor<BB>>,
    kv: &mut BurnKv<BB>,
    spans: &[SeqSpan],
    spec: &AttentionSpec,
    step: &BurnStep<BB>,
    tables: (&Tensor<BB, 2>, &Tensor<BB, 2>),
    table_rows: impl FnOnce() -> (Tensor<BB, 2>, Tensor<BB, 2>),
) -> Result<Option<BurnTensor<BB>>> {
    validate(qkv, kv, spans, spec)?;
    let view = kv.view().expect("reserved by validate");
    let qkv = qkv.map(|t| &t.t);
    if is_decode(spans) {
        if let Some(y) = BB::rope_decode_attention(qkv, tables, &view, &step.rows, spec) {
            return Ok(Some(BurnTensor::matrix(y)));
        }
    }
    let (cos, sin) = table_rows();
    let Some(q) = BB::rope_kv_write(qkv, (&cos, &sin), &view, &step.rows, spec) else {
        return Ok(None);
    };
    attend(&q, kv, spans, spec, Some(step)).map(Some)
}

/// Whether `spans` are a decode step: one new position per row, each row its own slot.
fn is_decode(spans: &[SeqSpan]) -> bool {
    let mut slots: Vec<usize> = spans.iter().map(|s| s.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    spans.iter().all(|s| s.len == 1) && slots.len() == spans.len()
}

/// Checks shapes and spans, and makes room in the cache for the step.
fn validate<BB: Kernels>(
    Qkv { q, k, v }: Qkv<'_, BurnTensor<BB>>,
    kv: &mut BurnKv<BB>,
    spans: &[SeqSpan],
    spec: &AttentionSpec,
) -> Result<()> {
    zoo_core::checks::attention(q.shape(), k.shape(), v.shape(), &kv.spec, spans, spec)?;
    let needed = spans.iter().map(|s| s.past + s.len).max().unwrap_or(0);
    kv.reserve(needed, &q.t);
    Ok(())
}

/// Attention of the (rotated) queries `q` over the cache, whose new rows are already written.
fn attend<BB: Kernels>(
    q: &Tensor<BB, 2>,
    kv: &BurnKv<BB>,
    spans: &[SeqSpan],
    spec: &AttentionSpec,
    step: Option<&BurnStep<BB>>,
) -> Result<BurnTensor<BB>> {
    if let (Some(step), true) = (step, spans.iter().all(|s| s.len == 1)) {
        let view = kv.view().expect("reserved");
        if let Some(out) = BB::decode_attention(q, &view, &step.rows, spec) {
            return Ok(BurnTensor::matrix(out));
        }
    }
    let (nh, nkv, hd) = (spec.n_heads, spec.n_kv_heads, spec.head_dim);
    let group = nh / nkv;
    let mut outputs = Vec::with_capacity(spans.len());
    for (index, span) in spans.iter().enumerate() {
        let rows = span.start..span.start + span.len;
        let total = span.past + span.len;
        let (keys, values) = kv.slot(span.slot, total); // (nKV, T, hd)

        // Queries grouped by kv head: (len, nH·hd) → (nKV, group·len, hd).
        let queries = q
            .clone()
            .slice([rows, 0..nh * hd])
            .reshape([span.len, nkv, group, hd])
            .permute([1, 2, 0, 3])
            .reshape([nkv, group * span.len, hd]);
        let out = kv.weigh(Qkv::new(&queries, &keys, &values), (index, span), spec, step, q); // (nKV, g·len, hd)
        let out = out.reshape([nkv, group, span.len, hd]).permute([2, 0, 1, 3]).reshape([span.len, nh * hd]);
        outputs.push(out);
    }
    Ok(BurnTensor::matrix(Tensor::cat(outputs, 0)))
}

/// The length of every span when `spans` are two or more fresh sequences of one length side
/// by side (each `past == 0`, span `i` at rows `i · len`): a training batch, or a batched
/// prefill of equal prompts. Their attention is then one batched product over all of them.
fn fresh_equal_spans(spans: &[SeqSpan]) -> Option<usize> {
    let len = spans.first()?.len;
    let fresh = spans.iter().enumerate().all(|(i, s)| s.past == 0 && s.len == len && s.start == i * len);
    (spans.len() > 1 && len > 0 && fresh).then_some(len)
}

/// Attention of `spans` (see [`fresh_equal_spans`]) over their own keys and values, batched:
/// `(batch · nKV, group · len, hd)` products and one masked softmax for all sequences, instead
/// of a loop over them (what makes training steps and their backward passes a few large
/// kernels rather than many small ones).
fn attend_fresh<BB: Kernels>(
    Qkv { q, k, v }: Qkv<'_, Tensor<BB, 2>>,
    kv: &BurnKv<BB>,
    len: usize,
    spans: &[SeqSpan],
    spec: &AttentionSpec,
    step: Option<&BurnStep<BB>>,
) -> BurnTensor<BB> {
    let (nh, nkv, hd, batch) = (spec.n_heads, spec.n_kv_heads, spec.head_dim, spans.len());
    let group = nh / nkv;
    let queries = q.clone().reshape([batch, len, nkv, group, hd]).permute([0, 2, 3, 1, 4]).reshape([
        batch * nkv,
        group * len,
        hd,
    ]);
    let by_head = |t: &Tensor<BB, 2>| {
        t.clone().reshape([batch, len, nkv, hd]).permute([0, 2, 1, 3]).reshape([batch * nkv, len, hd])
    };
    let (keys, values) = (by_head(k), by_head(v));
    // Every sequence has span 0's shape and mask.
    let out = kv.weigh(Qkv::new(&queries, &keys, &values), (0, &spans[0]), spec, step, q); // (batch · nKV, g·len, hd)
    let out = out.reshape([batch, nkv, group, len, hd]).permute([0, 3, 1, 2, 4]).reshape([batch * len, nh * hd]);
    BurnTensor::matrix(out)
}

/// Softmax of span `index`'s scores `(nKV, g·len, T)` under its causal (and sliding-window)
/// mask: one kernel where the backend has one, otherwise an additive mask (made once per step
/// and span) and Burn's softmax.
fn probabilities<BB: Kernels>(
    scores: Tensor<BB, 3>,
    span: &SeqSpan,
    index: usize,
    spec: &AttentionSpec,
    step: Option<&BurnStep<BB>>,
    like: &Tensor<BB, 2>,
) -> Tensor<BB, 3> {
    let [nkv, rows, total] = scores.dims();
    if let Some(probs) = BB::causal_softmax(&scores.clone().reshape([nkv * rows, total]), span, spec.window) {
        return probs.reshape([nkv, rows, total]);
    }
    let mut scores = scores;
    if needs_mask(span, spec.window) {
        let make = || causal_mask::<BB>(span, spec.window, like);
        let mask = step.map_or_else(make, |s| s.mask(index, spec.window, make));
        let grouped = scores.reshape([nkv, rows / span.len, span.len, total]) + mask;
        scores = grouped.reshape([nkv, rows, total]);
    }
    softmax(scores, 2)
}

/// Whether some query of `span` must not see some cached key.
fn needs_mask(span: &SeqSpan, window: Option<usize>) -> bool {
    span.len > 1 || window.is_some_and(|w| span.past + 1 > w)
}

/// Additive mask `(1, 1, len, T)`, broadcast over heads: 0 where query row may see key, −∞
/// elsewhere. Made on the device from two index ranges (a host-built mask of a 2 048-token
/// prompt is tens of megabytes to upload, per step).
fn causal_mask<BB: BurnBackend>(span: &SeqSpan, window: Option<usize>, like: &Tensor<BB, 2>) -> Tensor<BB, 4> {
    let device = like.device();
    let total = span.past + span.len;
    let rows = Tensor::<BB, 1, Int>::arange(span.past as i64..total as i64, &device).reshape([span.len, 1]);
    let cols = Tensor::<BB, 1, Int>::arange(0..total as i64, &device).reshape([1, total]);
    let mut hidden = cols.clone().greater(rows.clone());
    if let Some(w) = window {
        // Key j is visible to position p when p − w < j ≤ p.
        hidden = hidden.bool_or(cols.lower_equal(rows - w as i64));
    }
    let zeros = Tensor::<BB, 2>::zeros([span.len, total], (&device, like.dtype()));
    zeros.mask_fill(hidden, f32::NEG_INFINITY).reshape([1, 1, span.len, total])
}
