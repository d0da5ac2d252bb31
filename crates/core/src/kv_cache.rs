//! The KV cache: one backend buffer per layer, holding several sequences ("slots"), plus each
//! slot's length. Lengths live here, on the host; keys and values stay on the device.

use crate::backend::{Backend, KvSpec, SeqSpan, StepMemory};
use crate::{Error, Result};

/// What a model's cache looks like: layers × kv heads × head size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLayout {
    /// Decoder layers.
    pub n_layers: usize,
    /// Key/value heads per layer.
    pub n_kv_heads: usize,
    /// Channels per head.
    pub head_dim: usize,
}

/// A batch of new tokens: for each participating slot, the tokens to append to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    tokens: Vec<u32>,
    seqs: Vec<(usize, usize)>,
}

impl Batch {
    /// A batch with one sequence in slot 0.
    pub fn single(tokens: &[u32]) -> Self {
        let mut batch = Self::default();
        batch.push(0, tokens);
        batch
    }

    /// Appends `tokens` for `slot`.
    pub fn push(&mut self, slot: usize, tokens: &[u32]) {
        self.seqs.push((slot, tokens.len()));
        self.tokens.extend_from_slice(tokens);
    }

    /// All tokens, sequence after sequence.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// `(slot, number of tokens)` per sequence.
    pub fn seqs(&self) -> &[(usize, usize)] {
        &self.seqs
    }
}

/// Which rows of a step produce logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsRows {
    /// Only each sequence's last token (generation).
    Last,
    /// Every token (evaluation, parity tests).
    All,
}

/// A batch laid out against the cache: what a model's forward pass needs.
#[derive(Clone, Debug)]
pub struct Step<'a> {
    /// The new tokens, sequence after sequence.
    pub tokens: &'a [u32],
    /// Where each sequence's rows are and how long its slot already is.
    pub spans: Vec<SeqSpan>,
    /// Absolute position of every row.
    pub positions: Vec<usize>,
    /// The rows to compute logits for; `None` means all rows (also when the rows asked for are
    /// every row in order, as in a decode step).
    pub logit_rows: Option<Vec<usize>>,
}

/// Keys and values of past tokens for a fixed set of slots.
pub struct KvCache<B: Backend> {
    layers: Vec<B::KvBuffer>,
    lens: Vec<usize>,
    capacity: usize,
    /// The backend's memory of this cache's steps ([`Backend::run_step`]).
    memory: StepMemory,
}

impl<B: Backend> KvCache<B> {
    /// A cache of `slots` sequences of at most `capacity` tokens each.
    pub fn new(backend: &B, layout: &KvLayout, slots: usize, capacity: usize) -> Result<Self> {
        let spec = KvSpec { slots, n_kv_heads: layout.n_kv_heads, head_dim: layout.head_dim, capacity };
        let layers = (0..layout.n_layers).map(|_| backend.new_kv(&spec)).collect::<Result<_>>()?;
        Ok(Self { layers, lens: vec![0; slots], capacity, memory: StepMemory::default() })
    }

    /// Tokens cached for `slot`.
    pub fn len(&self, slot: usize) -> usize {
        self.lens[slot]
    }

    /// Whether `slot` is empty.
    pub fn is_empty(&self, slot: usize) -> bool {
        self.lens[slot] == 0
    }

    /// Maximum tokens per slot.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    /// Forgets the last tokens of `slot`, keeping `len` (they are overwritten by the next step).
    pub fn truncate(&mut self, slot: usize, len: usize) {
        self.lens[slot] = self.lens[slot].min(len);
    }

    /// The buffer of layer `layer`.
    pub fn layer_mut(&mut self, layer: usize) -> &mut B::KvBuffer {
        &mut self.layers[layer]
    }

    /// Lays `batch` out against the cache, checking slots and capacity.
    pub fn plan<'a>(&self, batch: &'a Batch, rows: LogitsRows) -> Result<Step<'a>> {
        let mut spans = Vec::with_capacity(batch.seqs.len());
        let mut positions = Vec::with_capacity(batch.tokens.len());
        let mut start = 0;
        for &(slot, len) in &batch.seqs {
            let past = *self.lens.get(slot).ok_or_else(|| Error::Shape {
                op: "kv cache",
                expected: format!("a slot below {}", self.lens.len()),
                got: vec![slot],
            })?;
            if past + len > self.capacity {
                return Err(Error::ContextFull { needed: past + len, limit: self.capacity });
            }
            spans.push(SeqSpan { slot, start, len, past });
            positions.extend(past..past + len);
            start += len;
        }
        let logit_rows = match rows {
            LogitsRows::All => None,
            LogitsRows::Last => Some(spans.iter().filter(|s| s.len > 0).map(|s| s.start + s.len - 1).collect()),
        };
        // Every row, in order (a decode step): no gather needed.
        let every_row =
            |rows: &Vec<usize>| rows.len() == positions.len() && rows.iter().enumerate().all(|(i, &r)| i == r);
        let logit_rows = logit_rows.filter(|rows| !every_row(rows));
        Ok(Step { tokens: &batch.tokens, spans, positions, logit_rows })
    }

    /// Takes the backend's step memory out (to lend it to [`Backend::run_step`] while the step
    /// borrows the cache); [`KvCache::restore_memory`] puts it back.
    pub(crate) fn take_memory(&mut self) -> StepMemory {
        std::mem::take(&mut self.memory)
    }

    /// Puts back what [`KvCache::take_memory`] took.
    pub(crate) fn restore_memory(&mut self, memory: StepMemory) {
        self.memory = memory;
    }

    /// Records that a step's tokens are now cached.
    pub fn commit(&mut self, step: &Step<'_>) {
        for span in &step.spans {
            self.lens[span.slot] = span.past + span.len;
        }
    }
}
