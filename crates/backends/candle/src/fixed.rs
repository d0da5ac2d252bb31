//! A decode step's inputs in device buffers that stay put ([`FixedInputs`]), so that a step
//! recorded once (a CUDA graph, `cuda_graph.rs`) can be replayed with new tokens and positions.
//!
//! A step run from fixed inputs reads only what the host writes into two buffers before it
//! starts: the rows' token ids and positions. Everything else a layer needs is made from those
//! on the device, once per step ([`crate::step::CandleStep`] keeps it): the RoPE rows (selected
//! by the positions), each span's KV-write index, and each span's attention mask. Attention
//! reads a fixed number of keys from every slot (`keys`, a power of two covering every span's
//! position) and masks the keys past each row's position, so the kernels, their shapes and
//! their buffers are the same from one step to the next of the same bucket. A slot read this
//! way is held at its full capacity, so its address never moves either.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use zoo_core::{Result, SeqSpan, Step};

use crate::error::CandleResult;

/// The fewest keys a fixed step reads: short contexts share one bucket.
const MIN_KEYS: usize = 256;

/// The device buffers a step's inputs are written into (see the module docs).
#[derive(Debug)]
pub(crate) struct FixedInputs {
    /// Every row's token id, `u32 [rows]`.
    ids: Tensor,
    /// Every row's position, `u32 [rows]`.
    positions: Tensor,
    /// `0..keys` as `u32`, what masks compare positions with.
    key_index: Tensor,
    /// Cleared when a layer could not run from these inputs (a slot's cache could not be held
    /// at its full capacity): the step ran as usual and must not be replayed.
    replayable: AtomicBool,
}

impl FixedInputs {
    /// Buffers for `rows` rows reading `keys` keys, on `device`.
    pub(crate) fn new(rows: usize, keys: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            ids: Tensor::zeros(rows, DType::U32, device).zoo()?,
            positions: Tensor::zeros(rows, DType::U32, device).zoo()?,
            key_index: Tensor::arange(0u32, keys as u32, device).zoo()?,
            replayable: AtomicBool::new(true),
        })
    }

    /// How many keys a step of `spans` reads from fixed inputs: a power of two, at least
    /// [`MIN_KEYS`], covering every span's last position.
    pub(crate) fn keys_for(spans: &[SeqSpan]) -> usize {
        let seen = spans.iter().map(|s| s.past + s.len).max().unwrap_or(0);
        seen.next_power_of_two().max(MIN_KEYS)
    }

    /// Writes `step`'s token ids and positions into the buffers, which must have its rows.
    pub(crate) fn write(&self, step: &Step<'_>) -> Result<()> {
        // Ids are below the vocabulary and positions below the context: both fit in u32.
        let positions: Vec<u32> = step.positions.iter().map(|&p| p as u32).collect();
        for (buffer, values) in [(&self.ids, step.tokens.to_vec()), (&self.positions, positions)] {
            let fresh = Tensor::from_vec(values, buffer.dims(), buffer.device()).zoo()?;
            buffer.slice_set(&fresh, 0, 0).zoo()?;
        }
        Ok(())
    }

    /// The rows' token ids on the device.
    pub(crate) fn ids(&self) -> &Tensor {
        &self.ids
    }

    /// The rows' positions on the device.
    pub(crate) fn positions(&self) -> &Tensor {
        &self.positions
    }

    /// How many keys attention reads from each slot.
    pub(crate) fn keys(&self) -> usize {
        self.key_index.dims()[0]
    }

    /// Marks the step as not replayable (see [`Self::replayable`]).
    pub(crate) fn refuse(&self) {
        self.replayable.store(false, Ordering::Relaxed);
    }

    /// Whether every layer of the step ran from these inputs.
    pub(crate) fn replayable(&self) -> bool {
        self.replayable.load(Ordering::Relaxed)
    }

    /// Where `span` (one row) writes its keys and values: its position, as the `u32` index
    /// `[kv_heads, 1, head_dim]` that `scatter_set` along the position axis takes.
    pub(crate) fn write_index(&self, span: &SeqSpan, kv_heads: usize, head_dim: usize) -> Result<Tensor> {
        let position = self.positions.narrow(0, span.start, 1).zoo()?;
        position
            .reshape((1, 1, 1))
            .and_then(|p| p.broadcast_as((kv_heads, 1, head_dim)))
            .and_then(|p| p.contiguous())
            .zoo()
    }

    /// The additive mask `[keys]` (in `dtype`) of `span`'s row over the first `keys` keys: 0
    /// where the row sees the key (at or before its position, and within `window`), −∞
    /// elsewhere.
    pub(crate) fn mask(&self, span: &SeqSpan, keys: usize, window: Option<usize>, dtype: DType) -> Result<Tensor> {
        let position = self.positions.narrow(0, span.start, 1).zoo()?;
        let index = self.key_index.narrow(0, 0, keys).zoo()?;
        let mut seen = index.broadcast_le(&position).zoo()?;
        if let Some(window) = window {
            // Within the window: pos − key < window, that is key + window > pos.
            let recent = index.affine(1.0, window as f64).and_then(|k| k.broadcast_gt(&position)).zoo()?;
            seen = (seen * recent).zoo()?;
        }
        let device = self.positions.device();
        let zero = Tensor::zeros(keys, DType::F32, device).zoo()?;
        let hidden = Tensor::full(f32::NEG_INFINITY, keys, device).zoo()?;
        seen.where_cond(&zero, &hidden).and_then(|m| m.to_dtype(dtype)).zoo()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::Device;
    use zoo_core::{AttentionSpec, Backend, KvSpec, Qkv, RopeConvention, RopeSpec, SeqSpan, Step};

    use super::FixedInputs;
    use crate::{Candle, CandleTensor, KvBuffer};

    const HEADS: usize = 4;
    const KV_HEADS: usize = 2;
    const HEAD_DIM: usize = 8;

    /// Values in [-1, 1) from a small linear congruential generator.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn qkv(b: &Candle, rows: usize, seed: u32) -> [CandleTensor; 3] {
        let upload = |width: usize, s: u32| b.upload(&values(rows * width, s), &[rows, width]).unwrap();
        [upload(HEADS * HEAD_DIM, seed), upload(KV_HEADS * HEAD_DIM, seed + 1), upload(KV_HEADS * HEAD_DIM, seed + 2)]
    }

    fn specs(window: Option<usize>) -> (AttentionSpec, RopeSpec, KvSpec) {
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let attention = AttentionSpec { n_heads: HEADS, n_kv_heads: KV_HEADS, head_dim: HEAD_DIM, scale, window };
        let rope = RopeSpec::new(HEAD_DIM, 10_000.0, RopeConvention::HalfSplit);
        (attention, rope, KvSpec { slots: 2, n_kv_heads: KV_HEADS, head_dim: HEAD_DIM, capacity: 40 })
    }

    /// One step of RoPE and attention, prepared as the backend prepares steps.
    fn attend(
        b: &Candle,
        step: &Step<'_>,
        kv: &mut KvBuffer,
        qkv: &[CandleTensor; 3],
        window: Option<usize>,
    ) -> CandleTensor {
        let (spec, rope, _) = specs(window);
        let input = b.prepare_step(step).unwrap();
        b.rope_attention_step(Qkv::new(&qkv[0], &qkv[1], &qkv[2]), kv, &input, &rope, &spec).unwrap()
    }

    /// Both slots filled with a prompt (7 and 3 tokens), the same way in two caches.
    fn prefilled(b: &Candle, window: Option<usize>) -> (KvBuffer, KvBuffer) {
        let (_, _, kv_spec) = specs(window);
        let (mut first, mut second) = (b.new_kv(&kv_spec).unwrap(), b.new_kv(&kv_spec).unwrap());
        let spans =
            vec![SeqSpan { slot: 0, start: 0, len: 7, past: 0 }, SeqSpan { slot: 1, start: 7, len: 3, past: 0 }];
        let positions: Vec<usize> = (0..7).chain(0..3).collect();
        let step = Step { tokens: &[0; 10], spans, positions, logit_rows: None };
        let prompt = qkv(b, 10, 1);
        for kv in [&mut first, &mut second] {
            attend(b, &step, kv, &prompt, window);
        }
        (first, second)
    }

    fn decode_step(past: [usize; 2]) -> Step<'static> {
        let spans = (0..2).map(|i| SeqSpan { slot: i, start: i, len: 1, past: past[i] }).collect();
        Step { tokens: &[3, 4], spans, positions: past.to_vec(), logit_rows: None }
    }

    #[test]
    fn decode_steps_from_fixed_inputs_match_the_usual_steps() {
        for window in [None, Some(4)] {
            let b = Candle::cpu(Some(1));
            let (mut usual, mut fixed_kv) = prefilled(&b, window);
            let fixed = Arc::new(FixedInputs::new(2, 256, &Device::Cpu).unwrap());
            // Three steps through the same buffers, as replays of one recording would run.
            for (n, past) in [[7, 3], [8, 4], [9, 5]].into_iter().enumerate() {
                let step = decode_step(past);
                let rows = qkv(&b, 2, 10 + n as u32 * 3);
                let want = b.to_host(&attend(&b, &step, &mut usual, &rows, window)).unwrap();
                fixed.write(&step).unwrap();
                let got = b.run_from(&fixed, &mut || Ok(attend(&b, &step, &mut fixed_kv, &rows, window))).unwrap();
                let got = b.to_host(&got).unwrap();
                assert!(fixed.replayable(), "window {window:?}, step {n}");
                let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst <= 1e-6, "window {window:?}, step {n}: outputs differ by {worst}");
            }
        }
    }

    #[test]
    fn a_step_that_is_not_one_row_per_sequence_is_refused_and_runs_as_usual() {
        let b = Candle::cpu(Some(1));
        let (mut usual, mut fixed_kv) = prefilled(&b, None);
        let spans = vec![SeqSpan { slot: 0, start: 0, len: 2, past: 7 }];
        let step = Step { tokens: &[1, 2], spans, positions: vec![7, 8], logit_rows: None };
        let rows = qkv(&b, 2, 20);
        let want = b.to_host(&attend(&b, &step, &mut usual, &rows, None)).unwrap();
        let fixed = Arc::new(FixedInputs::new(2, 256, &Device::Cpu).unwrap());
        fixed.write(&step).unwrap();
        let got = b.run_from(&fixed, &mut || Ok(attend(&b, &step, &mut fixed_kv, &rows, None))).unwrap();
        assert!(!fixed.replayable());
        assert_eq!(want, b.to_host(&got).unwrap());
    }

    #[test]
    fn an_op_reading_host_inputs_refuses_the_fixed_inputs() {
        let b = Candle::cpu(Some(1));
        let table = b.upload(&values(40, 5), &[10, 4]).unwrap();
        let fixed = Arc::new(FixedInputs::new(1, 256, &Device::Cpu).unwrap());
        b.run_from(&fixed, &mut || b.embedding(&table, &[3])).unwrap();
        assert!(!fixed.replayable(), "a learned position embedding read from the host would be frozen");
    }

    #[test]
    fn fixed_inputs_apply_to_the_thread_that_runs_the_step() {
        let b = Candle::cpu(Some(1));
        let table = b.upload(&values(40, 5), &[10, 4]).unwrap();
        let fixed = Arc::new(FixedInputs::new(1, 256, &Device::Cpu).unwrap());
        let elsewhere = || std::thread::scope(|s| s.spawn(|| b.embedding(&table, &[3])).join().unwrap());
        b.run_from(&fixed, &mut || elsewhere()).unwrap();
        assert!(fixed.replayable(), "another thread's host input leaves this step's inputs alone");
        let step = decode_step([1, 2]);
        let prepared = b.prepare_step(&step).unwrap();
        let candle_step = prepared.prepared::<crate::step::CandleStep>().unwrap();
        assert!(candle_step.fixed_inputs().is_none(), "a step outside run_from uploads its own inputs");
    }

    #[test]
    fn keys_cover_every_span_in_powers_of_two() {
        let span = |past| SeqSpan { slot: 0, start: 0, len: 1, past };
        assert_eq!(FixedInputs::keys_for(&[span(0)]), 256);
        assert_eq!(FixedInputs::keys_for(&[span(255)]), 256);
        assert_eq!(FixedInputs::keys_for(&[span(256), span(3)]), 512);
        assert_eq!(FixedInputs::keys_for(&[span(5000)]), 8192);
    }
}
