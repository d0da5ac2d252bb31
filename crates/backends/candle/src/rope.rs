//! Rotary position embeddings, half-split layout (channel `i` pairs with `i + head_dim/2`), with
//! candle-nn's fused `rope` kernel.
//!
//! The angles come from [`RopeSpec::angles`], as in every backend, but once per rotary spec:
//! [`RopeTables`] keeps `cos`/`sin` tables `[positions, head_dim/2]` on the device (computed in
//! f32 on the host, then cast once to the activations' dtype), and a forward step selects its
//! rows from them once ([`crate::step::CandleStep`]), so a layer uploads nothing. Every row may
//! sit at its own position (a batch mixes sequences), so each row gets its own cos/sin row: the
//! tensor is viewed as `[rows, heads, 1, head_dim]` with cos/sin `[rows, 1, head_dim/2]`,
//! candle's batched form.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Tensor};
use zoo_core::{Result, RopeSpec, Step};

use crate::activations::Activations;
use crate::error::CandleResult;
use crate::step::CandleStep;
use crate::tensor::CandleTensor;

/// RoPE of `x: [rows, heads·head_dim]` at `positions` (uploaded for this call).
pub(crate) fn rope(
    x: &CandleTensor,
    positions: &[usize],
    spec: &RopeSpec,
    tables: &RopeTables,
    act: Activations,
) -> Result<CandleTensor> {
    zoo_core::checks::rope(x.dims(), positions.len(), spec)?;
    let (ids, extent) = upload_positions(positions, x.inner().device())?;
    let (cos, sin) = tables.rows(spec, &ids, extent, act.of(x.inner()))?;
    rotate(x, &cos, &sin, spec.head_dim)
}

/// RoPE of `x` at `step`'s positions, with the rows `prepared` selected once for the step, and
/// the result multiplied by `scale` when given (folded into the rows, so no extra kernel).
pub(crate) fn rope_step(
    x: &CandleTensor,
    (step, prepared): (&Step<'_>, &CandleStep),
    spec: &RopeSpec,
    tables: &RopeTables,
    act: Activations,
    scale: Option<f32>,
) -> Result<CandleTensor> {
    zoo_core::checks::rope(x.dims(), step.positions.len(), spec)?;
    let (cos, sin) = prepared.rope_rows(tables, spec, act.of(x.inner()), scale)?;
    rotate(x, &cos, &sin, spec.head_dim)
}

/// Positions the first table of a spec covers; a longer context rebuilds it at the next power
/// of two.
const MIN_TABLE: usize = 4096;

/// `cos`/`sin` tables per rotary spec and dtype, shared by every clone of a backend.
#[derive(Clone, Debug, Default)]
pub(crate) struct RopeTables {
    tables: Arc<Mutex<Vec<Table>>>,
}

#[derive(Debug)]
struct Table {
    spec: RopeSpec,
    dtype: DType,
    cos: Tensor,
    sin: Tensor,
}

impl RopeTables {
    /// The `(cos, sin)` tables of `spec` in `dtype`, covering at least positions `0..needed`.
    pub(crate) fn get(
        &self,
        spec: &RopeSpec,
        needed: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = |t: &Table| t.spec == *spec && t.dtype == dtype && t.cos.dim(0).is_ok_and(|len| len >= needed);
        if let Some(t) = tables.iter().find(|t| fits(t)) {
            return Ok((t.cos.clone(), t.sin.clone()));
        }
        let len = needed.next_power_of_two().max(MIN_TABLE);
        let (cos, sin) = spec.angles(0..len);
        let half = spec.head_dim / 2;
        let upload = |v: Vec<f32>| Tensor::from_vec(v, (len, half), device).and_then(|t| t.to_dtype(dtype)).zoo();
        let table = Table { spec: spec.clone(), dtype, cos: upload(cos)?, sin: upload(sin)? };
        let found = (table.cos.clone(), table.sin.clone());
        tables.retain(|t| !(t.spec == *spec && t.dtype == dtype));
        tables.push(table);
        Ok(found)
    }

    /// Every table kept now (`cos` and `sin`), for a recording that reads them to hold.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn held(&self) -> Vec<Tensor> {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        tables.iter().flat_map(|t| [t.cos.clone(), t.sin.clone()]).collect()
    }

    /// The rows of `spec`'s tables at `positions` (a `u32` tensor on the device; `extent` is
    /// one past the largest), shaped `[rows, 1, head_dim/2]` for [`rotate`].
    pub(crate) fn rows(
        &self,
        spec: &RopeSpec,
        positions: &Tensor,
        extent: usize,
        dtype: DType,
    ) -> Result<(Tensor, Tensor)> {
        let (cos, sin) = self.get(spec, extent, dtype, positions.device())?;
        let n = positions.dim(0).zoo()?;
        let pick = |t: &Tensor| t.index_select(positions, 0).and_then(|r| r.reshape((n, 1, spec.head_dim / 2))).zoo();
        Ok((pick(&cos)?, pick(&sin)?))
    }
}

/// Rotates `x: [rows, heads·head_dim]` (in `cos`'s dtype) by per-row `cos`/`sin` rows
/// `[rows, 1, head_dim/2]`, which the caller has checked against `x` (`zoo_core::checks::rope`).
fn rotate(x: &CandleTensor, cos: &Tensor, sin: &Tensor, head_dim: usize) -> Result<CandleTensor> {
    let (rows, cols) = (x.dims()[0], x.dims()[1]);
    if rows == 0 {
        return Ok(CandleTensor::new(x.cast(cos.dtype())?));
    }
    let heads = x.cast(cos.dtype())?.contiguous().zoo()?.reshape((rows, cols / head_dim, 1, head_dim)).zoo()?;
    let y = candle_nn::rotary_emb::rope(&heads, cos, sin).zoo()?; // [n, h, 1, d]
    Ok(CandleTensor::new(y.reshape((rows, cols)).zoo()?))
}

/// Positions as the `u32` index tensor [`RopeTables::rows`] takes, and one past the largest.
pub(crate) fn upload_positions(positions: &[usize], device: &Device) -> Result<(Tensor, usize)> {
    // Positions fit in u32: contexts are far below 2³² tokens.
    let ids: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
    let extent = positions.iter().max().map_or(0, |&p| p + 1);
    Ok((Tensor::from_vec(ids, positions.len(), device).zoo()?, extent))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use zoo_core::{RopeConvention, RopeSpec};

    use super::{upload_positions, RopeTables, MIN_TABLE};

    #[test]
    fn table_rows_are_the_angles_of_their_positions() {
        let spec = RopeSpec::new(8, 10_000.0, RopeConvention::HalfSplitNegative);
        let positions = [5, 0, 4097, 5];
        let (ids, extent) = upload_positions(&positions, &Device::Cpu).unwrap();
        let tables = RopeTables::default();
        let (cos, sin) = tables.rows(&spec, &ids, extent, DType::F32).unwrap();
        assert_eq!(cos.dims(), [4, 1, 4]);
        let (want_cos, want_sin) = spec.angles(positions);
        assert_eq!(cos.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want_cos);
        assert_eq!(sin.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want_sin);
    }

    #[test]
    fn a_table_is_built_once_and_grows_for_longer_contexts() {
        let spec = RopeSpec::new(4, 10_000.0, RopeConvention::HalfSplit);
        let tables = RopeTables::default();
        let (first, _) = tables.get(&spec, 10, DType::F32, &Device::Cpu).unwrap();
        let (again, _) = tables.get(&spec, MIN_TABLE, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(first.id(), again.id(), "the table covering 10 positions covers {MIN_TABLE}");
        let (longer, _) = tables.get(&spec, MIN_TABLE + 1, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(longer.dims(), [2 * MIN_TABLE, 2]);
        let (bf16, _) = tables.get(&spec, 10, DType::BF16, &Device::Cpu).unwrap();
        assert_eq!(bf16.dtype(), DType::BF16);
        assert_eq!(tables.tables.lock().unwrap().len(), 2, "one table per spec and dtype");
    }
}
