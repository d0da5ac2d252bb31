//! Elementwise ops and softmax, in the dtype the activations take ([`Activations`]): the first
//! operand's, the second cast to it (a no-op when they agree, as they do within a model).

use candle_core::Tensor;
use zoo_core::{Result, UnaryOp};

use crate::activations::Activations;
use crate::error::{same_shape, CandleResult};
use crate::tensor::CandleTensor;

pub fn add(a: &CandleTensor, b: &CandleTensor, act: Activations) -> Result<CandleTensor> {
    same_shape(a, b, "add")?;
    let (a, b) = pair(a, b, act)?;
    Ok(CandleTensor::new((a + b).zoo()?))
}

pub fn mul(a: &CandleTensor, b: &CandleTensor, act: Activations) -> Result<CandleTensor> {
    same_shape(a, b, "mul")?;
    let (a, b) = pair(a, b, act)?;
    Ok(CandleTensor::new((a * b).zoo()?))
}

pub fn unary(x: &CandleTensor, op: UnaryOp, act: Activations) -> Result<CandleTensor> {
    Ok(CandleTensor::new(apply(&x.compute(act)?, op).zoo()?))
}

/// `op(gate) · up`: candle has no fused SwiGLU kernel (`candle_nn::ops::swiglu` is this same
/// pair of ops), so two kernels.
pub fn gated(gate: &CandleTensor, up: &CandleTensor, op: UnaryOp, act: Activations) -> Result<CandleTensor> {
    same_shape(gate, up, "gated")?;
    let (gate, up) = pair(gate, up, act)?;
    Ok(CandleTensor::new((apply(&gate, op).zoo()? * up).zoo()?))
}

/// Softmax over the last dimension: candle-nn's fused kernel (it subtracts the row maximum first;
/// on CUDA it accumulates 16-bit rows in f32).
pub fn softmax(x: &CandleTensor, act: Activations) -> Result<CandleTensor> {
    let x = x.compute(act)?.contiguous().zoo()?;
    Ok(CandleTensor::new(candle_nn::ops::softmax_last_dim(&x).zoo()?))
}

/// Both operands in the dtype `a` computes in.
fn pair(a: &CandleTensor, b: &CandleTensor, act: Activations) -> Result<(Tensor, Tensor)> {
    let a = a.compute(act)?;
    let b = b.cast(a.dtype())?;
    Ok((a, b))
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
