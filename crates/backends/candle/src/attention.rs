//! Causal attention over the KV cache, with grouped-query heads and an optional sliding window.
//!
//! Each span writes its new keys/values into its slot, then attends with two batched matrix
//! products per span: the query heads that share a KV head are stacked as rows, so
//! `q: [kv_heads, group·len, head_dim]` multiplies that KV head's keys without copying them.
//! Everything runs in the activations' dtype (the cache's): with 16-bit activations the scores,
//! softmax (f32 inside candle's CUDA kernel) and probabilities are 16-bit, as in
//! candle-transformers' models. A decode step (one row per span) reshapes without copies.
//! A decode step run from fixed inputs (`fixed.rs`, so that it can be recorded and replayed)
//! writes its keys where the device-side positions say and reads a fixed number of keys under
//! a mask made on the device, so nothing in it depends on host values.

use std::ops::Range;

use candle_core::{DType, Tensor};
use zoo_core::{AttentionSpec, Qkv, Result, SeqSpan};

use crate::activations::Activations;
use crate::error::CandleResult;
use crate::kv::KvBuffer;
use crate::step::CandleStep;
use crate::tensor::CandleTensor;

/// What attention computes with beyond its tensors: the activation policy and, inside a forward
/// step, the step's prepared inputs (its masks are made once per step, not once per layer).
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) activations: Activations,
    pub(crate) step: Option<&'a CandleStep>,
    /// The queries already carry the spec's scale (folded into their RoPE rows).
    pub(crate) prescaled: bool,
}

impl KvBuffer {
    /// Writes each span's new keys and values at its positions, then attends every new row to
    /// its slot's cached positions up to its own (within the window): `[n, n_heads·head_dim]`.
    pub(crate) fn attend(
        &mut self,
        Qkv { q, k, v }: Qkv<'_, CandleTensor>,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
        cx: Context<'_>,
    ) -> Result<CandleTensor> {
        let n = zoo_core::checks::attention(q.dims(), k.dims(), v.dims(), self.spec(), spans, spec)?;
        let dtype = self.dtype_or(cx.activations.of(q.inner()));
        let (q, k, v) = (q.cast(dtype)?, k.cast(dtype)?, v.cast(dtype)?);
        if let Some(out) = self.attend_fixed((&q, &k, &v), spans, spec, cx, dtype)? {
            return Ok(CandleTensor::new(out));
        }
        for span in spans.iter().filter(|s| s.len > 0) {
            self.reserve(span.slot, span.past + span.len, dtype)?;
            let rows = |t: &Tensor| t.narrow(0, span.start, span.len).zoo();
            self.write(span.slot, span.past, &rows(&k)?, &rows(&v)?)?;
        }
        let mut outputs = Vec::with_capacity(spans.len());
        for (index, span) in spans.iter().enumerate().filter(|(_, s)| s.len > 0) {
            let q = q.narrow(0, span.start, span.len).zoo()?;
            outputs.push(attend(&q, self, (index, span), spec, cx)?);
        }
        let out = match outputs.len() {
            0 => Tensor::zeros((n, spec.n_heads * spec.head_dim), dtype, q.device()).zoo()?,
            1 => outputs.swap_remove(0),
            _ => Tensor::cat(&outputs, 0).zoo()?,
        };
        Ok(CandleTensor::new(out))
    }

    /// A decode step run from fixed inputs (`fixed.rs`): each span's one row writes its keys
    /// and values where the step's positions say, and attends to the first `keys` positions of
    /// its slot under the step's mask. `None` when the step does not run from fixed inputs, or
    /// when it cannot (a span of more than one row, a slot not held at its full capacity: the
    /// inputs are then refused, so the step is not replayed, and it runs as usual).
    fn attend_fixed(
        &mut self,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        spans: &[SeqSpan],
        spec: &AttentionSpec,
        cx: Context<'_>,
        dtype: DType,
    ) -> Result<Option<Tensor>> {
        let Some((step, fixed)) = cx.step.and_then(|s| Some((s, s.fixed_inputs()?))) else {
            return Ok(None);
        };
        let capacity = self.spec().capacity;
        if spans.is_empty() || spans.iter().any(|s| s.len != 1) {
            fixed.refuse();
            return Ok(None);
        }
        for span in spans {
            self.reserve(span.slot, capacity, dtype)?;
        }
        if !spans.iter().all(|s| self.is_full(s.slot)) {
            fixed.refuse();
            return Ok(None);
        }
        let keys = fixed.keys().min(capacity);
        let shape = (self.spec().n_kv_heads, self.spec().head_dim);
        let mut outputs = Vec::with_capacity(spans.len());
        for (index, span) in spans.iter().enumerate() {
            let row = |t: &Tensor| t.narrow(0, span.start, 1).zoo();
            let at = step.write_index(fixed, (index, span), shape)?;
            self.write_at(span.slot, &at, &row(k)?, &row(v)?)?;
            let mask = step.fixed_mask(fixed, (index, span), keys, spec.window, dtype)?;
            let mask = mask.reshape((1, 1, 1, keys)).zoo()?;
            let (cached_keys, values) = self.read(span.slot, 0..keys)?;
            outputs.push(attend_keys(&row(q)?, (&cached_keys, &values), Some(&mask), spec, cx.prescaled)?);
        }
        let out = if outputs.len() == 1 { outputs.swap_remove(0) } else { Tensor::cat(&outputs, 0).zoo()? };
        Ok(Some(out))
    }
}

/// Attention of one span's queries (`[len, n_heads·head_dim]`) to its slot's cache.
fn attend(
    q: &Tensor,
    kv: &KvBuffer,
    (index, span): (usize, &SeqSpan),
    spec: &AttentionSpec,
    cx: Context<'_>,
) -> Result<Tensor> {
    // The first query sees the most: keys from there on are all any query of the span needs.
    let first = spec.window.map_or(0, |w| (span.past + 1).saturating_sub(w));
    let (keys, values) = kv.read(span.slot, first..span.past + span.len)?; // [kv_heads, keys, hd]
    let seen = span.past + span.len - first;
    let mask = step_mask(q, (index, span), first..first + seen, spec.window, cx)?;
    let mask = match mask {
        Some(m) => Some(m.reshape((1, 1, span.len, seen)).zoo()?),
        None => None,
    };
    attend_keys(q, (&keys, &values), mask.as_ref(), spec, cx.prescaled)
}

/// Attention of `len` queries (`[len, n_heads·head_dim]`) to `keys` and `values`
/// (`[kv_heads, seen, head_dim]`, views into a cache), with an additive `mask` that broadcasts
/// to `[kv_heads, group, len, seen]`; `prescaled` queries already carry the spec's scale.
fn attend_keys(
    q: &Tensor,
    (keys, values): (&Tensor, &Tensor),
    mask: Option<&Tensor>,
    spec: &AttentionSpec,
    prescaled: bool,
) -> Result<Tensor> {
    let (len, hd, kv_heads) = (q.dim(0).zoo()?, spec.head_dim, spec.n_kv_heads);
    let group = spec.n_heads / kv_heads;
    let seen = keys.dim(1).zoo()?;
    let q = q
        .reshape((len, spec.n_heads, hd))
        .zoo()?
        .transpose(0, 1)
        .zoo()?
        .contiguous()
        .zoo()?
        .reshape((kv_heads, group * len, hd))
        .zoo()?; // [kv_heads, group·len, hd]: query head h = kv_head·group + j, row j·len + r
    let mut scores = q.matmul(&keys.t().zoo()?).zoo()?; // [kv_heads, group·len, seen]
    if !prescaled {
        scores = (scores * spec.scale as f64).zoo()?;
    }
    let scores = match mask {
        Some(mask) => {
            let by_query = scores.reshape((kv_heads, group, len, seen)).zoo()?;
            by_query.broadcast_add(mask).zoo()?.reshape((kv_heads, group * len, seen)).zoo()?
        }
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores).zoo()?;
    let out = probs.matmul(values).zoo()?; // [kv_heads, group·len, hd]
    out.reshape((spec.n_heads, len, hd)).zoo()?.transpose(0, 1).zoo()?.reshape((len, spec.n_heads * hd)).zoo()
}

/// Span `index`'s additive mask `[len, keys.len()]` on `q`'s device in `q`'s dtype (made once
/// per step when there is one), or `None` for a single query (a decode step), which sees every
/// key.
fn step_mask(
    q: &Tensor,
    (index, span): (usize, &SeqSpan),
    keys: Range<usize>,
    window: Option<usize>,
    cx: Context<'_>,
) -> Result<Option<Tensor>> {
    if span.len == 1 {
        return Ok(None);
    }
    let (dtype, shape) = (q.dtype(), (span.len, keys.len()));
    let make = || -> Result<Tensor> {
        let values = mask(span, keys.clone(), window);
        Tensor::from_vec(values, shape, q.device()).and_then(|m| m.to_dtype(dtype)).zoo()
    };
    match cx.step {
        Some(step) => step.mask(index, window, dtype, make).map(Some),
        None => make().map(Some),
    }
}

/// The additive mask `[len, keys.len()]`, row-major: 0 where query `r` may see key `k`, −∞
/// elsewhere.
fn mask(span: &SeqSpan, keys: Range<usize>, window: Option<usize>) -> Vec<f32> {
    let mut mask = Vec::with_capacity(span.len * keys.len());
    for r in 0..span.len {
        let pos = span.past + r;
        mask.extend(keys.clone().map(|key| {
            let visible = key <= pos && window.is_none_or(|w| pos - key < w);
            if visible {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        }));
    }
    mask
}
