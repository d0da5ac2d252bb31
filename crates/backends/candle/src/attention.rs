//! Causal attention over the KV cache, with grouped-query heads and an optional sliding window.
//!
//! Each span writes its new keys/values into its slot, then attends with two batched matrix
//! products per span: the query heads that share a KV head are stacked as rows, so
//! `q: [kv_heads, group·len, head_dim]` multiplies that KV head's keys without copying them.

use candle_core::Tensor;
use zoo_core::{AttentionSpec, Result, SeqSpan};

use crate::error::CandleResult;
use crate::kv::KvBuffer;
use crate::tensor::{CandleTensor, ACTIVATION};

impl KvBuffer {
    /// Writes each span's new keys and values at its positions, then attends every new row to
    /// its slot's cached positions up to its own (within the window): `[n, n_heads·head_dim]`.
    pub(crate) fn attend(
        &mut self,
        q: &CandleTensor,
        k: &CandleTensor,
        v: &CandleTensor,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<CandleTensor> {
        let n = zoo_core::checks::attention(q.dims(), k.dims(), v.dims(), self.spec(), spans, spec)?;
        let (q, k, v) = (q.f32()?, k.f32()?, v.f32()?);
        for span in spans.iter().filter(|s| s.len > 0) {
            self.reserve(span.slot, span.past + span.len)?;
            let rows = |t: &Tensor| t.narrow(0, span.start, span.len).zoo();
            self.write(span.slot, span.past, &rows(&k)?, &rows(&v)?)?;
        }
        let mut outputs = Vec::with_capacity(spans.len());
        for span in spans.iter().filter(|s| s.len > 0) {
            outputs.push(attend(&q.narrow(0, span.start, span.len).zoo()?, self, span, spec)?);
        }
        let out = match outputs.len() {
            0 => Tensor::zeros((n, spec.n_heads * spec.head_dim), ACTIVATION, q.device()).zoo()?,
            1 => outputs.swap_remove(0),
            _ => Tensor::cat(&outputs, 0).zoo()?,
        };
        Ok(CandleTensor::new(out))
    }
}

/// Attention of one span's queries (`[len, n_heads·head_dim]`) to its slot's cache.
fn attend(q: &Tensor, kv: &KvBuffer, span: &SeqSpan, spec: &AttentionSpec) -> Result<Tensor> {
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
    let scores = (q.matmul(&keys.t().zoo()?).zoo()? * spec.scale as f64).zoo()?; // [kv_heads, group·len, seen]
    let scores = match mask(span, first, seen, spec.window) {
        Some(mask) => {
            let mask = Tensor::from_vec(mask, (len, seen), q.device()).zoo()?;
            let by_query = scores.reshape((kv_heads, group, len, seen)).zoo()?;
            by_query.broadcast_add(&mask).zoo()?.reshape((kv_heads, group * len, seen)).zoo()?
        }
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores).zoo()?;
    let out = probs.matmul(&values).zoo()?; // [kv_heads, group·len, hd]
    out.reshape((spec.n_heads, len, hd)).zoo()?.transpose(0, 1).zoo()?.reshape((len, spec.n_heads * hd)).zoo()
}

/// The additive mask `[len, seen]` (0 where query `r` may see key `first + t`, −∞ elsewhere), or
/// `None` when every query sees every key (a single query, the decode step).
fn mask(span: &SeqSpan, first: usize, seen: usize, window: Option<usize>) -> Option<Vec<f32>> {
    if span.len == 1 {
        return None;
    }
    let mut mask = Vec::with_capacity(span.len * seen);
    for r in 0..span.len {
        let pos = span.past + r;
        mask.extend((first..first + seen).map(|key| {
            let visible = key <= pos && window.is_none_or(|w| pos - key < w);
            if visible {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        }));
    }
    Some(mask)
}
