//! `x · wᵀ + b`. The product runs in the weight's dtype (f32 on the CPU; bf16/f16 where the
//! weight stays as stored, through cuBLAS with f32 accumulation on a GPU) and the result takes the
//! activations' dtype ([`Activations`]): with 16-bit activations and weights, nothing is cast.
//! `wᵀ` is a strided view: candle's gemm and cuBLAS read the `[out, in]` layout as is.

use zoo_core::Result;

use crate::activations::Activations;
use crate::error::{as_vector, dims2, shape_error, CandleResult};
use crate::tensor::CandleTensor;

pub fn linear(
    x: &CandleTensor,
    w: &CandleTensor,
    bias: Option<&CandleTensor>,
    act: Activations,
) -> Result<CandleTensor> {
    let (_, inputs) = dims2(x, "linear x")?;
    let (outputs, w_inputs) = dims2(w, "linear weight")?;
    if inputs != w_inputs {
        return Err(shape_error("linear", format!("a weight [_, {inputs}]"), w.dims()));
    }
    let out = act.of(x.inner());
    let w = w.inner();
    let x = x.cast(w.dtype())?.contiguous().zoo()?;
    let mut y = x.matmul(&w.t().zoo()?).zoo()?.to_dtype(out).zoo()?; // [n, out]
    if let Some(b) = bias {
        let b = as_vector(b, outputs, "linear bias")?.to_dtype(out).zoo()?;
        y = y.broadcast_add(&b).zoo()?;
    }
    Ok(CandleTensor::new(y))
}
