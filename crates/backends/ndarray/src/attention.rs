//! Causal attention over the KV cache.
//!
//! Each slot keeps keys and values as `[kv_head][position][head_dim]`, so one head's keys are
//! contiguous; the buffer grows by doubling up to the slot capacity, so short chats stay small.

use rayon::prelude::*;
use zoo_core::{AttentionSpec, KvGrowth, KvSpec, Result, SeqSpan, TensorShape};

use crate::attend_row::attend_row;
use crate::tensor::NdTensor;

thread_local! {
    /// Each thread's scores of one query row, reused from row to row.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Host memory follows use: buffers double from 16 positions per slot.
const GROWTH: KvGrowth = KvGrowth::Double { min: 16 };

/// One layer's keys and values for every slot.
pub struct KvBuffer {
    spec: KvSpec,
    slots: Vec<Slot>,
}

#[derive(Default)]
struct Slot {
    keys: Vec<f32>,
    values: Vec<f32>,
    /// Positions the vectors have room for.
    room: usize,
}

impl KvBuffer {
    pub fn new(spec: &KvSpec) -> Self {
        Self { spec: *spec, slots: (0..spec.slots).map(|_| Slot::default()).collect() }
    }

    fn head_stride(&self, slot: usize) -> usize {
        self.slots[slot].room * self.spec.head_dim
    }

    /// Makes room for `needed` positions in `slot`, keeping what is cached.
    fn reserve(&mut self, slot: usize, needed: usize) {
        let (heads, hd) = (self.spec.n_kv_heads, self.spec.head_dim);
        let s = &mut self.slots[slot];
        if needed <= s.room {
            return;
        }
        let room = GROWTH.room(needed, s.room, self.spec.capacity);
        for data in [&mut s.keys, &mut s.values] {
            let mut grown = vec![0f32; heads * room * hd];
            for h in 0..heads {
                let old = &data[h * s.room * hd..(h + 1) * s.room * hd];
                grown[h * room * hd..h * room * hd + old.len()].copy_from_slice(old);
            }
            *data = grown;
        }
        s.room = room;
    }

    /// Stores one token's keys and values (`[n_kv_heads·head_dim]` each) at `pos`.
    fn write(&mut self, slot: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (hd, stride) = (self.spec.head_dim, self.head_stride(slot));
        let s = &mut self.slots[slot];
        for (h, (kh, vh)) in k.chunks_exact(hd).zip(v.chunks_exact(hd)).enumerate() {
            let at = h * stride + pos * hd;
            s.keys[at..at + hd].copy_from_slice(kh);
            s.values[at..at + hd].copy_from_slice(vh);
        }
    }

    /// Keys and values of head `h` for positions `range`.
    fn head(&self, slot: usize, h: usize, range: std::ops::Range<usize>) -> (&[f32], &[f32]) {
        let (hd, stride) = (self.spec.head_dim, self.head_stride(slot));
        let span = h * stride + range.start * hd..h * stride + range.end * hd;
        let s = &self.slots[slot];
        (&s.keys[span.clone()], &s.values[span])
    }
}

impl KvBuffer {
    /// Writes each span's new keys and values at its positions, then attends every new row to
    /// its slot's cached positions up to its own (within the window): `[n, n_heads·head_dim]`.
    pub fn attend(
        &mut self,
        q: &NdTensor,
        k: &NdTensor,
        v: &NdTensor,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<NdTensor> {
        let n = zoo_core::checks::attention(q.shape(), k.shape(), v.shape(), &self.spec, spans, spec)?;
        let (hd, kv_cols) = (spec.head_dim, spec.n_kv_heads * spec.head_dim);
        let mut row_span = vec![0usize; n];
        for (i, span) in spans.iter().enumerate() {
            self.reserve(span.slot, span.past + span.len);
            for r in 0..span.len {
                let row = span.start + r;
                row_span[row] = i;
                let (k_row, v_row) = (&k.values()[row * kv_cols..][..kv_cols], &v.values()[row * kv_cols..][..kv_cols]);
                self.write(span.slot, span.past + r, k_row, v_row);
            }
        }
        let group = spec.n_heads / spec.n_kv_heads;
        let kv = &*self;
        let mut out = vec![0f32; n * spec.n_heads * hd];
        out.par_chunks_mut(hd).enumerate().for_each(|(idx, out_head)| {
            let (row, h) = (idx / spec.n_heads, idx % spec.n_heads);
            let span = &spans[row_span[row]];
            let pos = span.past + (row - span.start);
            let first = spec.window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let (keys, values) = kv.head(span.slot, h / group, first..pos + 1);
            let query = &q.values()[(row * spec.n_heads + h) * hd..][..hd];
            SCORES.with_borrow_mut(|scores| attend_row(query, keys, values, spec.scale, scores, out_head));
        });
        NdTensor::new(out, vec![n, spec.n_heads * hd])
    }
}
