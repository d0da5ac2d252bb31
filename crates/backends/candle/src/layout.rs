//! Ops that move values without arithmetic: embedding lookup, slicing, reshaping, row gathering.
//! Indices are checked on the host, so a bad id is a zoo error rather than a device fault.

use candle_core::Tensor;
use zoo_core::{Error, Result};

use crate::activations::Activations;
use crate::error::{dims2, shape_error, CandleResult};
use crate::tensor::CandleTensor;

/// Rows of the table, in the dtype activations take from it: the residual stream of a 16-bit
/// checkpoint starts here in that dtype with [`Activations::Weights`].
pub fn embedding(table: &CandleTensor, ids: &[u32], act: Activations) -> Result<CandleTensor> {
    let (vocab, _) = dims2(table, "embedding")?;
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::TokenOutOfRange { id: bad, vocab_size: vocab });
    }
    select_rows(table, ids.to_vec(), act)
}

/// Rows `ids` (already on the table's device) of the table, as [`embedding`] makes them;
/// `host_ids` are the same ids, checked here against the vocabulary.
pub fn embedding_of(table: &CandleTensor, ids: &Tensor, host_ids: &[u32], act: Activations) -> Result<CandleTensor> {
    let (vocab, _) = dims2(table, "embedding")?;
    if let Some(&bad) = host_ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::TokenOutOfRange { id: bad, vocab_size: vocab });
    }
    let rows = table.inner().index_select(ids, 0).zoo()?;
    Ok(CandleTensor::new(rows.to_dtype(act.of(table.inner())).zoo()?))
}

pub fn gather_rows(x: &CandleTensor, rows: &[usize], act: Activations) -> Result<CandleTensor> {
    let (n, _) = dims2(x, "gather_rows")?;
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(shape_error("gather_rows", format!("row indices below {n}"), &[bad]));
    }
    // Every row in order (a decode step's logits row): nothing to gather or upload.
    if rows.len() == n && rows.iter().enumerate().all(|(i, &r)| i == r) {
        return Ok(CandleTensor::new(x.compute(act)?));
    }
    // Rows fit in u32: a tensor's row count is far below 2³².
    select_rows(x, rows.iter().map(|&r| r as u32).collect(), act)
}

/// Rows `ids` of a 2-D tensor, in the dtype `act` computes in.
fn select_rows(x: &CandleTensor, ids: Vec<u32>, act: Activations) -> Result<CandleTensor> {
    let len = ids.len();
    let ids = Tensor::from_vec(ids, len, x.inner().device()).zoo()?;
    let rows = x.inner().index_select(&ids, 0).zoo()?;
    Ok(CandleTensor::new(rows.to_dtype(act.of(x.inner())).zoo()?))
}

pub fn narrow(x: &CandleTensor, dim: usize, start: usize, len: usize) -> Result<CandleTensor> {
    let shape = x.dims();
    if dim >= shape.len() || start.checked_add(len).is_none_or(|end| end > shape[dim]) {
        return Err(shape_error("narrow", format!("dim {dim} to hold {start}..{start}+{len}"), shape));
    }
    Ok(CandleTensor::new(x.inner().narrow(dim, start, len).zoo()?))
}

pub fn reshape(x: &CandleTensor, shape: &[usize]) -> Result<CandleTensor> {
    let len: usize = x.dims().iter().product();
    if shape.iter().product::<usize>() != len {
        return Err(shape_error("reshape", format!("{len} elements"), shape));
    }
    Ok(CandleTensor::new(x.inner().reshape(shape).zoo()?))
}
