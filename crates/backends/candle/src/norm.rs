//! LayerNorm and RMSNorm over the last dimension, in f32.
//!
//! RMSNorm is candle-nn's fused kernel. LayerNorm is written out in two passes (mean, then the
//! variance of the centred values) rather than with candle-nn's fused kernel, which computes
//! `E[x²] − E[x]²` in f32 and loses precision when a row's mean is large against its spread.

use candle_core::{Tensor, D};
use zoo_core::Result;

use crate::error::{as_vector, CandleResult};
use crate::tensor::{CandleTensor, ACTIVATION};

pub fn layer_norm(x: &CandleTensor, weight: &CandleTensor, bias: &CandleTensor, eps: f32) -> Result<CandleTensor> {
    let dim = last_dim(x);
    let w = as_vector(weight, dim, "layer_norm weight")?.to_dtype(ACTIVATION).zoo()?;
    let b = as_vector(bias, dim, "layer_norm bias")?.to_dtype(ACTIVATION).zoo()?;
    let x = x.f32()?;
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1).zoo()?).zoo()?;
    let var = centred.sqr().zoo()?.mean_keepdim(D::Minus1).zoo()?;
    let inv = (var + eps as f64).zoo()?.sqrt().zoo()?.recip().zoo()?;
    let y = centred.broadcast_mul(&inv).zoo()?.broadcast_mul(&w).zoo()?.broadcast_add(&b).zoo()?;
    Ok(CandleTensor::new(y))
}

pub fn rms_norm(x: &CandleTensor, weight: Option<&CandleTensor>, eps: f32) -> Result<CandleTensor> {
    let dim = last_dim(x);
    let x = x.f32()?.contiguous().zoo()?;
    let w = match weight {
        Some(w) => as_vector(w, dim, "rms_norm weight")?.to_dtype(x.dtype()).zoo()?,
        None => Tensor::ones(dim, x.dtype(), x.device()).zoo()?,
    };
    Ok(CandleTensor::new(candle_nn::ops::rms_norm(&x, &w, eps).zoo()?))
}

/// Size of the last dimension (1 for a scalar).
fn last_dim(x: &CandleTensor) -> usize {
    x.dims().last().copied().unwrap_or(1)
}
