//! Causal attention over a KV cache held as Burn tensors: one `[kv_heads, room, head_dim]` pair
//! per slot, written in place with `slice_assign` and grown by doubling up to the capacity.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{Tensor, TensorData};
use zoo_core::{AttentionSpec, Error, KvSpec, Result, SeqSpan};

use crate::tensor::BurnTensor;

/// One layer's keys and values for every slot.
pub struct BurnKv<BB: BurnBackend> {
    spec: KvSpec,
    slots: Vec<Option<(Tensor<BB, 3>, Tensor<BB, 3>)>>,
}

impl<BB: BurnBackend> BurnKv<BB> {
    pub(crate) fn new(spec: &KvSpec) -> Self {
        Self { spec: *spec, slots: (0..spec.slots).map(|_| None).collect() }
    }

    /// The slot's buffers with room for `needed` positions.
    fn reserve(&mut self, slot: usize, needed: usize, like: &Tensor<BB, 2>) -> (Tensor<BB, 3>, Tensor<BB, 3>) {
        let (heads, hd) = (self.spec.n_kv_heads, self.spec.head_dim);
        let room = self.slots[slot].as_ref().map_or(0, |(k, _)| k.dims()[1]);
        if let Some(pair) = self.slots[slot].as_ref().filter(|_| needed <= room) {
            return pair.clone();
        }
        let new_room = needed.max(2 * room).max(16).min(self.spec.capacity);
        let zeros = || Tensor::<BB, 3>::zeros([heads, new_room, hd], (&like.device(), like.dtype()));
        match self.slots[slot].take() {
            None => (zeros(), zeros()),
            Some((k, v)) => (
                zeros().slice_assign([0..heads, 0..room, 0..hd], k),
                zeros().slice_assign([0..heads, 0..room, 0..hd], v),
            ),
        }
    }
}

pub(crate) fn attention<BB: BurnBackend>(
    q: &BurnTensor<BB>,
    k: &BurnTensor<BB>,
    v: &BurnTensor<BB>,
    kv: &mut BurnKv<BB>,
    spans: &[SeqSpan],
    spec: &AttentionSpec,
) -> Result<BurnTensor<BB>> {
    let (n, q_cols) = q.dims2("attention q")?;
    if q_cols != spec.n_heads * spec.head_dim {
        return Err(Error::Shape {
            op: "attention",
            expected: format!("q with {} columns", spec.n_heads * spec.head_dim),
            got: vec![n, q_cols],
        });
    }
    for t in [k, v] {
        if t.dims2("attention k/v")? != (n, spec.n_kv_heads * spec.head_dim) {
            return Err(Error::Shape {
                op: "attention",
                expected: format!("k/v of shape [{n}, {}]", spec.n_kv_heads * spec.head_dim),
                got: zoo_core::TensorShape::shape(t).to_vec(),
            });
        }
    }
    check(spec, kv, spans, n)?;
    let (nh, nkv, hd) = (spec.n_heads, spec.n_kv_heads, spec.head_dim);
    let group = nh / nkv;
    let mut outputs = Vec::with_capacity(spans.len());
    for span in spans {
        let rows = span.start..span.start + span.len;
        let total = span.past + span.len;
        let (mut keys, mut values) = kv.reserve(span.slot, total, &q.t);
        // (len, nKV·hd) → (nKV, len, hd), written at past..total.
        let new_k = k.t.clone().slice([rows.clone(), 0..nkv * hd]).reshape([span.len, nkv, hd]).swap_dims(0, 1);
        let new_v = v.t.clone().slice([rows.clone(), 0..nkv * hd]).reshape([span.len, nkv, hd]).swap_dims(0, 1);
        keys = keys.slice_assign([0..nkv, span.past..total, 0..hd], new_k);
        values = values.slice_assign([0..nkv, span.past..total, 0..hd], new_v);
        kv.slots[span.slot] = Some((keys.clone(), values.clone()));
        let keys = keys.slice([0..nkv, 0..total, 0..hd]); // (nKV, T, hd)
        let values = values.slice([0..nkv, 0..total, 0..hd]);
        // Queries grouped by kv head: (len, nH·hd) → (nKV, group·len, hd).
        let queries =
            q.t.clone().slice([rows, 0..nh * hd]).reshape([span.len, nkv, group, hd]).permute([1, 2, 0, 3]).reshape([
                nkv,
                group * span.len,
                hd,
            ]);
        let scores = queries.matmul(keys.swap_dims(1, 2)).mul_scalar(spec.scale); // (nKV, g·len, T)
        let mask = causal_mask::<BB>(span, group, spec.window, &q.t);
        let probs = softmax(scores + mask, 2);
        let out = probs.matmul(values); // (nKV, g·len, hd)
        let out = out.reshape([nkv, group, span.len, hd]).permute([2, 0, 1, 3]).reshape([span.len, nh * hd]);
        outputs.push(out);
    }
    Ok(BurnTensor::matrix(Tensor::cat(outputs, 0)))
}

/// Additive mask `(1, group·len, T)`: 0 where query row may see key, −∞ elsewhere.
fn causal_mask<BB: BurnBackend>(
    span: &SeqSpan,
    group: usize,
    window: Option<usize>,
    like: &Tensor<BB, 2>,
) -> Tensor<BB, 3> {
    let total = span.past + span.len;
    let mut mask = Vec::with_capacity(group * span.len * total);
    for _ in 0..group {
        for r in 0..span.len {
            let pos = span.past + r;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            mask.extend((0..total).map(|j| if (first..=pos).contains(&j) { 0.0f32 } else { f32::NEG_INFINITY }));
        }
    }
    Tensor::from_data(TensorData::new(mask, [1, group * span.len, total]), (&like.device(), like.dtype()))
}

fn check<BB: BurnBackend>(spec: &AttentionSpec, kv: &BurnKv<BB>, spans: &[SeqSpan], n: usize) -> Result<()> {
    let bad = |expected: String, got: Vec<usize>| Err(Error::Shape { op: "attention", expected, got });
    if spec.n_kv_heads == 0 || spec.n_heads % spec.n_kv_heads != 0 {
        return bad("n_heads divisible by n_kv_heads".into(), vec![spec.n_heads, spec.n_kv_heads]);
    }
    if spec.n_kv_heads != kv.spec.n_kv_heads || spec.head_dim != kv.spec.head_dim {
        return bad("a KV buffer of matching heads".into(), vec![kv.spec.n_kv_heads, kv.spec.head_dim]);
    }
    let mut next = 0;
    for s in spans {
        if s.slot >= kv.spec.slots || s.start != next {
            return bad(format!("contiguous spans over slots below {}", kv.spec.slots), vec![s.slot, s.start]);
        }
        if s.past + s.len > kv.spec.capacity {
            return Err(Error::ContextFull { needed: s.past + s.len, limit: kv.spec.capacity });
        }
        next += s.len;
    }
    if next != n {
        return bad(format!("spans covering all {n} rows"), vec![next]);
    }
    Ok(())
}
