//! Elementwise ops and softmax, in f32.

use candle_core::Tensor;
use zoo_core::{Result, UnaryOp};

use crate::error::{same_shape, CandleResult};
use crate::tensor::CandleTensor;

pub fn add(a: &CandleTensor, b: &CandleTensor) -> Result<CandleTensor> {
    same_shape(a, b, "add")?;
    Ok(CandleTensor::new((a.f32()? + b.f32()?).zoo()?))
}

pub fn mul(a: &CandleTensor, b: &CandleTensor) -> Result<CandleTensor> {
    same_shape(a, b, "mul")?;
    Ok(CandleTensor::new((a.f32()? * b.f32()?).zoo()?))
}

pub fn unary(x: &CandleTensor, op: UnaryOp) -> Result<CandleTensor> {
    Ok(CandleTensor::new(apply(&x.f32()?, op).zoo()?))
}

pub fn gated(gate: &CandleTensor, up: &CandleTensor, op: UnaryOp) -> Result<CandleTensor> {
    same_shape(gate, up, "gated")?;
    Ok(CandleTensor::new((apply(&gate.f32()?, op).zoo()? * up.f32()?).zoo()?))
}

/// Softmax over the last dimension (candle subtracts the row maximum first).
pub fn softmax(x: &CandleTensor) -> Result<CandleTensor> {
    let x = x.f32()?.contiguous().zoo()?;
    Ok(CandleTensor::new(candle_nn::ops::softmax_last_dim(&x).zoo()?))
}

fn apply(x: &Tensor, op: UnaryOp) -> candle_core::Result<Tensor> {
    match op {
        // candle's `gelu` is the tanh approximation (`gelu_erf` is the exact one).
        UnaryOp::GeluTanh => x.gelu(),
        UnaryOp::Silu => x.silu(),
        UnaryOp::ReluSquared => x.relu()?.sqr(),
        UnaryOp::Softcap(cap) => (x / cap as f64)?.tanh()? * cap as f64,
    }
}
