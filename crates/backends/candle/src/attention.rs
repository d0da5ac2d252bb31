//! Causal attention over the KV cache, with grouped-query heads and an optional sliding window.
//!
//! Each span writes its new keys/values into its slot, then attends with two batched matrix
//! products per span: the query heads that share a KV head are stacked as rows, so
//! `q: [kv_heads, group·len, head_dim]` multiplies that KV head's keys without copying them.
//! Everything runs in the activations' dtype (the cache's): with 16-bit activations the scores,
//! softmax (f32 inside candle's CUDA kernel) and probabilities are 16-bit, as in
//! candle-transformers' models. A decode step (one row per span) reshapes without copies.

use std::ops::Range;

use candle_core::Tensor;
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
}

/// Attention of one span's queries (`[len, n_heads·head_dim]`) to its slot's cache.
fn attend(
    q: &Tensor,
    kv: &KvBuffer,
    (index, span): (usize, &SeqSpan),
    spec: &AttentionSpec,
    cx: Context<'_>,
) -> Result<Tensor> {
    let (len, hd, kv_heads) = (span.len, spec.head_dim, spec.n_kv_heads);
    let group = spec.n_heads / kv_heads;
    // The first query sees the most: keys from there on are all any query of the span needs.
    let first = spec.window.map_or(0, |w| (span.past + 1).saturating_sub(w));
    let (keys, values) = kv.read(span.slot, first..span.past + len)?; // [kv_heads, keys, hd]
    let seen = span.past + len - first;
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
    if !cx.prescaled {
        scores = (scores * spec.scale as f64).zoo()?;
    }
    let scores = match step_mask(&q, (index, span), first..first + seen, spec.window, cx)? {
        Some(mask) => {
            let by_query = scores.reshape((kv_heads, group, len, seen)).zoo()?;
            by_query.broadcast_add(&mask).zoo()?.reshape((kv_heads, group * len, seen)).zoo()?
        }
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores).zoo()?;
    let out = probs.matmul(&values).zoo()?; // [kv_heads, group·len, hd]
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
