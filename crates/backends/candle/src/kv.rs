//! One layer's KV cache on the device: per slot, keys and values as `[kv_head, position,
//! head_dim]` tensors in the activations' dtype (f32, or the 16-bit dtype of a 16-bit model's
//! activations, fixed by the first write), written in place with `slice_set`.
//!
//! Sizing follows zoo's one policy ([`KvGrowth`]): on a CUDA device a slot takes its full
//! capacity at its first write, so its buffers never move and a decode step only writes its new
//! row and reads strided views of what is cached (cuBLAS reads them in place); on the CPU (or
//! where the full capacity does not fit) they double up to it, copying what is cached, so short
//! chats stay small and a long generation reallocates only `log₂(capacity)` times.

use std::ops::Range;

use candle_core::{DType, Device, Tensor};
use zoo_core::{KvGrowth, KvSpec, Result};

use crate::error::CandleResult;

/// Buffers double from 16 positions per slot (on a GPU, where the full capacity did not fit).
const GROWTH: KvGrowth = KvGrowth::Double { min: 16 };

/// One layer's keys and values for every slot.
pub struct KvBuffer {
    spec: KvSpec,
    device: Device,
    /// The element type of every slot, set by the first write.
    dtype: Option<DType>,
    slots: Vec<Option<Slot>>,
}

/// A slot's storage: `room` positions of keys and values, `[n_kv_heads, room, head_dim]` each.
struct Slot {
    keys: Tensor,
    values: Tensor,
    room: usize,
}

impl KvBuffer {
    pub(crate) fn new(spec: &KvSpec, device: &Device) -> Self {
        Self { spec: *spec, device: device.clone(), dtype: None, slots: (0..spec.slots).map(|_| None).collect() }
    }

    /// The dtype keys and values are cached in: the one fixed by the first write, else `wanted`.
    pub(crate) fn dtype_or(&self, wanted: DType) -> DType {
        self.dtype.unwrap_or(wanted)
    }

    /// The shape this buffer was made for.
    pub fn spec(&self) -> &KvSpec {
        &self.spec
    }

    /// Makes room for `needed` positions in `slot`, keeping what is cached; the first call fixes
    /// the buffer's dtype to `dtype`.
    pub(crate) fn reserve(&mut self, slot: usize, needed: usize, dtype: DType) -> Result<()> {
        let room = self.slots[slot].as_ref().map_or(0, |s| s.room);
        if needed <= room {
            return Ok(());
        }
        let dtype = *self.dtype.get_or_insert(dtype);
        let zeros = |room: usize| -> Result<(Tensor, Tensor)> {
            let shape = (self.spec.n_kv_heads, room, self.spec.head_dim);
            Ok((Tensor::zeros(shape, dtype, &self.device).zoo()?, Tensor::zeros(shape, dtype, &self.device).zoo()?))
        };
        // On a GPU the whole capacity at once, so buffers never move; where that does not fit,
        // the doubling host backends use.
        let full = self.device.is_cuda().then(|| KvGrowth::Full.room(needed, room, self.spec.capacity));
        let full = full.and_then(|grown| Some((grown, zeros(grown).ok()?)));
        let (grown, (keys, values)) = match full {
            Some(allocated) => allocated,
            None => {
                let grown = GROWTH.room(needed, room, self.spec.capacity);
                (grown, zeros(grown)?)
            }
        };
        if let Some(old) = &self.slots[slot] {
            keys.slice_set(&old.keys, 1, 0).zoo()?;
            values.slice_set(&old.values, 1, 0).zoo()?;
        }
        self.slots[slot] = Some(Slot { keys, values, room: grown });
        Ok(())
    }

    /// Stores rows of keys and values (`[len, n_kv_heads·head_dim]` each) at positions
    /// `past..past+len` of `slot`, which [`Self::reserve`] has made room for: one copy kernel
    /// each (a single row, a decode step's, is already laid out by head).
    pub(crate) fn write(&mut self, slot: usize, past: usize, k: &Tensor, v: &Tensor) -> Result<()> {
        let s = self.slot(slot)?;
        let (heads, hd) = (self.spec.n_kv_heads, self.spec.head_dim);
        for (cache, rows) in [(&s.keys, k), (&s.values, v)] {
            let len = rows.dim(0).zoo()?;
            let rows = rows.to_dtype(cache.dtype()).zoo()?;
            let by_head = rows.reshape((len, heads, hd)).zoo()?.transpose(0, 1).zoo()?.contiguous().zoo()?;
            cache.slice_set(&by_head, 1, past).zoo()?;
        }
        Ok(())
    }

    /// Stores one row of keys and values (`[1, n_kv_heads·head_dim]` each) of `slot` at the
    /// position `at` holds on the device (`u32 [n_kv_heads, 1, head_dim]`, every element the
    /// same: [`crate::fixed::FixedInputs::write_index`]), so the host never names it.
    pub(crate) fn write_at(&mut self, slot: usize, at: &Tensor, k: &Tensor, v: &Tensor) -> Result<()> {
        let s = self.slot(slot)?;
        let (heads, hd) = (self.spec.n_kv_heads, self.spec.head_dim);
        for (cache, row) in [(&s.keys, k), (&s.values, v)] {
            let by_head = row.to_dtype(cache.dtype()).zoo()?.reshape((1, heads, hd)).zoo()?;
            let by_head = by_head.transpose(0, 1).zoo()?.contiguous().zoo()?;
            cache.scatter_set(at, &by_head, 1).zoo()?;
        }
        Ok(())
    }

    /// Whether `slot` holds its full capacity (so its buffers never move again).
    pub(crate) fn is_full(&self, slot: usize) -> bool {
        self.slots[slot].as_ref().is_some_and(|s| s.room >= self.spec.capacity)
    }

    /// Keys and values of `slot` at `positions`, `[n_kv_heads, positions.len(), head_dim]` each
    /// (strided views into the cache, not copies).
    pub(crate) fn read(&self, slot: usize, positions: Range<usize>) -> Result<(Tensor, Tensor)> {
        let s = self.slot(slot)?;
        let keys = s.keys.narrow(1, positions.start, positions.len()).zoo()?;
        let values = s.values.narrow(1, positions.start, positions.len()).zoo()?;
        Ok((keys, values))
    }

    fn slot(&self, slot: usize) -> Result<&Slot> {
        self.slots[slot].as_ref().ok_or_else(|| zoo_core::Error::Backend {
            backend: "candle".into(),
            message: format!("KV slot {slot} used before it was reserved"),
        })
    }
}
