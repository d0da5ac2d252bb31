//! What the candle backend prepares once per forward step ([`CandleStep`]), so that no layer
//! uploads positions, RoPE rows or attention masks again. On CUDA an upload from pageable host
//! memory waits for the stream to drain, so one per layer kept the GPU from running ahead.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Tensor};
use zoo_core::{Result, RopeSpec, SeqSpan, Step};

use crate::error::CandleResult;
use crate::fixed::FixedInputs;
use crate::rope::{upload_positions, RopeTables};

/// One forward step's device inputs: the rows' positions, uploaded when the step is prepared
/// (the stream is idle then), and what layers make from them, made by the first that needs it.
pub(crate) struct CandleStep {
    made: Mutex<Made>,
    /// The buffers the step's ids and positions were written into, when it runs from fixed
    /// inputs (a step that may be recorded and replayed: `fixed.rs`).
    fixed: Option<Arc<FixedInputs>>,
}

/// The step's positions and what the step's layers have asked for so far.
struct Made {
    /// Every row's position (`u32`) and one past the largest.
    positions: (Tensor, usize),
    /// Per rotary spec, dtype and scale, the rows' `cos` and `sin`.
    rope: Vec<(RopeKey, Tensor, Tensor)>,
    /// Per span index, window and dtype, that span's additive mask.
    masks: Kept<(usize, Option<usize>, DType)>,
    /// From fixed inputs, per span index and KV shape, where the span writes its keys.
    write_indexes: Kept<(usize, (usize, usize))>,
    /// From fixed inputs, per span index, keys read, window and dtype, the span's mask.
    fixed_masks: Kept<(usize, usize, Option<usize>, DType)>,
}

/// Tensors a step made, by what identifies each.
type Kept<K> = Vec<(K, Tensor)>;

/// The tensor `made` holds for `key`, else the one `make` makes, kept for the rest of the step.
fn once_per_step<K: PartialEq>(made: &mut Kept<K>, key: K, make: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    if let Some((_, t)) = made.iter().find(|(k, _)| *k == key) {
        return Ok(t.clone());
    }
    let t = make()?;
    made.push((key, t.clone()));
    Ok(t)
}

/// Which rows of RoPE tables: their spec and dtype, and a factor they were multiplied by.
#[derive(Clone, PartialEq)]
struct RopeKey {
    spec: RopeSpec,
    dtype: DType,
    scale: Option<f32>,
}

impl Made {
    /// The rows `key` names, made (and kept) on first use.
    fn rope_rows(&mut self, tables: &RopeTables, key: RopeKey) -> Result<(Tensor, Tensor)> {
        if let Some((_, cos, sin)) = self.rope.iter().find(|(k, _, _)| *k == key) {
            return Ok((cos.clone(), sin.clone()));
        }
        let (cos, sin) = match key.scale {
            Some(scale) => {
                let (cos, sin) = self.rope_rows(tables, RopeKey { scale: None, ..key.clone() })?;
                ((cos * scale as f64).zoo()?, (sin * scale as f64).zoo()?)
            }
            None => tables.rows(&key.spec, &self.positions.0, self.positions.1, key.dtype)?,
        };
        self.rope.push((key, cos.clone(), sin.clone()));
        Ok((cos, sin))
    }
}

impl CandleStep {
    /// Uploads `step`'s positions to `device`.
    pub(crate) fn new(step: &Step<'_>, device: &Device) -> Result<Self> {
        let positions = upload_positions(&step.positions, device)?;
        Ok(Self::with(positions, None))
    }

    /// A step whose ids and positions the caller has written into `fixed`. Its RoPE rows come
    /// from tables covering every key the step reads, so a table never grows between two steps
    /// of one bucket.
    pub(crate) fn fixed(fixed: Arc<FixedInputs>) -> Self {
        Self::with((fixed.positions().clone(), fixed.keys()), Some(fixed))
    }

    fn with(positions: (Tensor, usize), fixed: Option<Arc<FixedInputs>>) -> Self {
        let made =
            Made { positions, rope: Vec::new(), masks: Vec::new(), write_indexes: Vec::new(), fixed_masks: Vec::new() };
        Self { made: Mutex::new(made), fixed }
    }

    /// The fixed inputs the step runs from, if it does.
    pub(crate) fn fixed_inputs(&self) -> Option<&FixedInputs> {
        self.fixed.as_deref()
    }

    /// From fixed inputs, where span `index` writes its keys and values (made once per step).
    pub(crate) fn write_index(
        &self,
        fixed: &FixedInputs,
        (index, span): (usize, &SeqSpan),
        kv: (usize, usize),
    ) -> Result<Tensor> {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        once_per_step(&mut made.write_indexes, (index, kv), || fixed.write_index(span, kv.0, kv.1))
    }

    /// From fixed inputs, span `index`'s mask over `keys` keys under `window` in `dtype` (made
    /// once per step).
    pub(crate) fn fixed_mask(
        &self,
        fixed: &FixedInputs,
        (index, span): (usize, &SeqSpan),
        keys: usize,
        window: Option<usize>,
        dtype: DType,
    ) -> Result<Tensor> {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        once_per_step(&mut made.fixed_masks, (index, keys, window, dtype), || fixed.mask(span, keys, window, dtype))
    }

    /// The step's rows of `spec`'s RoPE tables in `dtype`: `([n, 1, half], [n, 1, half])`, times
    /// `scale` when given (attention's `1/√d` folded into the queries' rotation).
    pub(crate) fn rope_rows(
        &self,
        tables: &RopeTables,
        spec: &RopeSpec,
        dtype: DType,
        scale: Option<f32>,
    ) -> Result<(Tensor, Tensor)> {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        made.rope_rows(tables, RopeKey { spec: spec.clone(), dtype, scale })
    }

    /// The additive mask of span `index` under `window` in `dtype`, made once per step by `make`.
    pub(crate) fn mask(
        &self,
        index: usize,
        window: Option<usize>,
        dtype: DType,
        make: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        once_per_step(&mut made.masks, (index, window, dtype), make)
    }
}
