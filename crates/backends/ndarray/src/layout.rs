//! Ops that move values without arithmetic: embedding lookup, slicing, reshaping, row gathering.

use zoo_core::{Error, Result};

use crate::tensor::NdTensor;

pub fn embedding(table: &NdTensor, ids: &[u32]) -> Result<NdTensor> {
    let (vocab, dim) = table.dims2("embedding")?;
    let rows: Vec<usize> = ids.iter().map(|&id| id as usize).collect();
    if let Some(&bad) = rows.iter().find(|&&r| r >= vocab) {
        return Err(Error::TokenOutOfRange { id: bad as u32, vocab_size: vocab });
    }
    // Weights kept as stored (16-bit, int8, blocks: rows are whole blocks) widen only the rows
    // asked for.
    if let Some(stored) = table.compressed() {
        let mut out = Vec::with_capacity(rows.len() * dim);
        for &r in &rows {
            stored.dequantize_range(r * dim..(r + 1) * dim, &mut out);
        }
        return NdTensor::new(out, vec![rows.len(), dim]);
    }
    copy_rows(table.values(), dim, &rows)
}

pub fn gather_rows(x: &NdTensor, rows: &[usize]) -> Result<NdTensor> {
    let (n, cols) = x.dims2("gather_rows")?;
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::Shape { op: "gather_rows", expected: format!("row indices below {n}"), got: vec![bad] });
    }
    copy_rows(x.values(), cols, rows)
}

fn copy_rows(values: &[f32], cols: usize, rows: &[usize]) -> Result<NdTensor> {
    let mut out = Vec::with_capacity(rows.len() * cols);
    for &r in rows {
        out.extend_from_slice(&values[r * cols..(r + 1) * cols]);
    }
    NdTensor::new(out, vec![rows.len(), cols])
}

pub fn narrow(x: &NdTensor, dim: usize, start: usize, len: usize) -> Result<NdTensor> {
    let shape = x.shape_vec();
    if dim >= shape.len() || start + len > shape[dim] {
        return Err(Error::Shape {
            op: "narrow",
            expected: format!("dim {dim} to hold {start}..{}", start + len),
            got: shape,
        });
    }
    let outer: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product();
    let values = x.values();
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let base = (o * shape[dim] + start) * inner;
        out.extend_from_slice(&values[base..base + len * inner]);
    }
    let mut new_shape = shape;
    new_shape[dim] = len;
    NdTensor::new(out, new_shape)
}

pub fn reshape(x: &NdTensor, shape: &[usize]) -> Result<NdTensor> {
    x.with_shape(shape.to_vec())
}
