//! What the Burn backend prepares once per forward step ([`BurnStep`]) and once per model
//! ([`RopeTables`]), so that no layer uploads positions, masks or RoPE angles again.

use std::sync::{Arc, Mutex, PoisonError};

use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{DType as BurnDType, Int, Tensor, TensorData};
use zoo_core::{RopeSpec, Step};

use crate::kernels::{key_bound, RowTable};

/// RoPE `cos`/`sin` tables `[positions, head_dim / 2]` per rotary spec, built on the host once
/// (angles in f32 exactly as the reference computes them) and kept on the device.
#[derive(Clone, Debug)]
pub(crate) struct RopeTables<BB: BurnBackend> {
    tables: Arc<Mutex<Vec<RopeTable<BB>>>>,
}

#[derive(Clone, Debug)]
struct RopeTable<BB: BurnBackend> {
    spec: RopeSpec,
    cos: Tensor<BB, 2>,
    sin: Tensor<BB, 2>,
}

/// Positions the first table of a spec covers; longer contexts rebuild it at the next power of two.
const MIN_TABLE: usize = 4096;

impl<BB: BurnBackend> Default for RopeTables<BB> {
    fn default() -> Self {
        Self { tables: Arc::default() }
    }
}

impl<BB: BurnBackend> RopeTables<BB> {
    /// The `(cos, sin)` tables of `spec` covering positions `0..needed`.
    pub(crate) fn get(
        &self,
        spec: &RopeSpec,
        needed: usize,
        device: &BB::Device,
        dtype: BurnDType,
    ) -> (Tensor<BB, 2>, Tensor<BB, 2>) {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = tables.iter().find(|t| t.spec == *spec && t.cos.dims()[0] >= needed) {
            return (t.cos.clone(), t.sin.clone());
        }
        let len = needed.next_power_of_two().max(MIN_TABLE);
        let (cos, sin) = spec.angles(0..len);
        let half = spec.head_dim / 2;
        let upload = |v: Vec<f32>| Tensor::<BB, 2>::from_data(TensorData::new(v, [len, half]), (device, dtype));
        let table = RopeTable { spec: spec.clone(), cos: upload(cos), sin: upload(sin) };
        tables.retain(|t| t.spec != *spec);
        tables.push(table.clone());
        (table.cos, table.sin)
    }
}

/// The host values of a step's row table, one per row: token ids, slots, positions (what
/// [`BurnStep::new`] uploads, and what a replayed step writes into the recorded buffers).
pub(crate) fn row_columns(step: &Step<'_>) -> [Vec<i64>; 3] {
    let tokens = step.tokens.iter().map(|&t| i64::from(t)).collect();
    let slots = step.spans.iter().flat_map(|span| std::iter::repeat_n(span.slot as i64, span.len)).collect();
    let positions = step.positions.iter().map(|&p| p as i64).collect();
    [tokens, slots, positions]
}

/// The largest position of `step` plus one: the most keys a row attends to.
pub(crate) fn extent(step: &Step<'_>) -> usize {
    step.positions.iter().max().map_or(0, |&p| p + 1)
}

/// One forward step's device inputs: every row's slot and position (uploaded once), and the
/// step's RoPE rows and attention masks, made by the first layer that needs them.
pub(crate) struct BurnStep<BB: BurnBackend> {
    /// Slot and position of every row.
    pub(crate) rows: RowTable<BB>,
    rope: Mutex<Vec<StepRope<BB>>>,
    masks: Mutex<Vec<StepMask<BB>>>,
}

/// A rotary spec and the step's rows of its `cos` and `sin` tables.
type StepRope<BB> = (RopeSpec, Tensor<BB, 2>, Tensor<BB, 2>);
/// A span index, a sliding window and that span's additive mask.
type StepMask<BB> = (usize, Option<usize>, Tensor<BB, 4>);

impl<BB: BurnBackend> BurnStep<BB> {
    /// Uploads the step's row table.
    pub(crate) fn new(step: &Step<'_>, device: &BB::Device) -> Self {
        let n = step.positions.len();
        let int = |v: Vec<i64>| Tensor::<BB, 1, Int>::from_data(TensorData::new(v, [n]), device);
        let [tokens, slots, positions] = row_columns(step).map(int);
        Self {
            rows: RowTable { tokens, slots, positions, bound: key_bound(extent(step)) },
            rope: Mutex::default(),
            masks: Mutex::default(),
        }
    }

    /// The step's rows of the RoPE tables of `spec`: `([n, half], [n, half])`.
    pub(crate) fn rope_rows(
        &self,
        tables: &RopeTables<BB>,
        spec: &RopeSpec,
        device: &BB::Device,
        dtype: BurnDType,
    ) -> (Tensor<BB, 2>, Tensor<BB, 2>) {
        let mut rows = self.rope.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, cos, sin)) = rows.iter().find(|(s, _, _)| s == spec) {
            return (cos.clone(), sin.clone());
        }
        let (cos, sin) = tables.get(spec, self.rows.bound, device, dtype);
        let index = self.rows.positions.clone();
        let (cos, sin) = (cos.select(0, index.clone()), sin.select(0, index));
        rows.push((spec.clone(), cos.clone(), sin.clone()));
        (cos, sin)
    }

    /// The additive mask of span `index` under `window`, made once per step by `make`.
    pub(crate) fn mask(
        &self,
        index: usize,
        window: Option<usize>,
        make: impl FnOnce() -> Tensor<BB, 4>,
    ) -> Tensor<BB, 4> {
        let mut masks = self.masks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, m)) = masks.iter().find(|(i, w, _)| *i == index && *w == window) {
            return m.clone();
        }
        let m = make();
        masks.push((index, window, m.clone()));
        m
    }
}
