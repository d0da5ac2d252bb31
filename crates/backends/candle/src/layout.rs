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
    check_ids(table, ids)?;
    select_rows(table, ids.to_vec(), act)
}

/// Rows `ids` (already on the table's device) of the table, as [`embedding`] makes them;
/// `host_ids` are the same ids, checked here against the vocabulary.
pub fn embedding_of(table: &CandleTensor, ids: &Tensor, host_ids: &[u32], act: Activations) -> Result<CandleTensor> {
    check_ids(table, host_ids)?;
    rows_at(table, ids, act)
}

/// Every id below the table's row count (the vocabulary).
fn check_ids(table: &CandleTensor, ids: &[u32]) -> Result<()> {
    let (vocab, _) = dims2(table, "embedding")?;
    match ids.iter().find(|&&id| id as usize >= vocab) {
        Some(&bad) => Err(Error::TokenOutOfRange { id: bad, vocab_size: vocab }),
        None => Ok(()),
    }
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
    rows_at(x, &Tensor::from_vec(ids, len, x.inner().device()).zoo()?, act)
}

/// Rows `ids` (a `u32` tensor on `x`'s device) of a 2-D tensor, in the dtype `act` computes in.
fn rows_at(x: &CandleTensor, ids: &Tensor, act: Activations) -> Result<CandleTensor> {
    let rows = x.inner().index_select(ids, 0).zoo()?;
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
