//! `x · wᵀ + b`. The product runs in the weight's dtype (f32 on the CPU; bf16/f16 on a GPU,
//! where the weight stays as stored and only the small activation is cast), and the result is
//! f32. `wᵀ` is a strided view: candle's gemm and cuBLAS read the `[out, in]` layout as is.

use zoo_core::Result;

use crate::error::{as_vector, dims2, shape_error, CandleResult};
use crate::tensor::{CandleTensor, ACTIVATION};

pub fn linear(x: &CandleTensor, w: &CandleTensor, bias: Option<&CandleTensor>) -> Result<CandleTensor> {
    let (_, inputs) = dims2(x, "linear x")?;
    let (outputs, w_inputs) = dims2(w, "linear weight")?;
    if inputs != w_inputs {
        return Err(shape_error("linear", format!("a weight [_, {inputs}]"), w.dims()));
    }
    let w = w.inner();
    let x = x.inner().to_dtype(w.dtype()).zoo()?.contiguous().zoo()?;
    let mut y = x.matmul(&w.t().zoo()?).zoo()?.to_dtype(ACTIVATION).zoo()?; // [n, out]
    if let Some(b) = bias {
        let b = as_vector(b, outputs, "linear bias")?.to_dtype(ACTIVATION).zoo()?;
        y = y.broadcast_add(&b).zoo()?;
    }
    Ok(CandleTensor::new(y))
}
