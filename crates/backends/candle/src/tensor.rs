//! The candle backend's tensor, and moving values in and out of it: checkpoint weights (kept in
//! their stored dtype on a GPU, converted to f32 on the CPU), f32 uploads and f32 read-back.

use candle_core::{DType as CandleDType, Device, Tensor};
use zoo_core::{DType, Error, Result, Support, TensorShape, WeightView};

use crate::activations::Activations;
use crate::error::{shape_error, CandleResult};

/// A candle tensor on the backend's device.
#[derive(Clone, Debug)]
pub struct CandleTensor(Tensor);

impl CandleTensor {
    /// Wraps a candle tensor.
    pub fn new(tensor: Tensor) -> Self {
        Self(tensor)
    }

    /// The candle tensor, for programs that continue in candle.
    pub fn inner(&self) -> &Tensor {
        &self.0
    }

    /// The shape, outermost dimension first.
    pub fn dims(&self) -> &[usize] {
        self.0.dims()
    }

    /// The values in `dtype` (the same tensor, not a copy, when they already are).
    pub(crate) fn cast(&self, dtype: CandleDType) -> Result<Tensor> {
        self.0.to_dtype(dtype).zoo()
    }

    /// The values in the dtype `activations` computes in with this tensor as its input.
    pub(crate) fn compute(&self, activations: Activations) -> Result<Tensor> {
        self.cast(activations.of(&self.0))
    }
}

impl TensorShape for CandleTensor {
    fn shape(&self) -> &[usize] {
        self.0.dims()
    }
}

/// How [`weight`] holds 16-bit weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Keep {
    /// f16/bf16 matrices stay as stored (what the matrix products read).
    pub(crate) matrices: bool,
    /// f16/bf16 vectors (norm weights, biases) stay as stored too.
    pub(crate) vectors: bool,
}

/// Makes a checkpoint weight resident on `device`. f16/bf16 matrices and vectors stay as stored
/// where `keep` says so and otherwise become f32, exactly. ggml blocks are dequantised to f32.
pub(crate) fn weight(view: &WeightView, device: &Device, keep: Keep, backend: &str) -> Result<CandleTensor> {
    let stored = match view.dtype {
        DType::F32 => CandleDType::F32,
        DType::F16 => CandleDType::F16,
        DType::BF16 => CandleDType::BF16,
        // Block-quantised weights (GGUF Q8_0/Q4_0/Q4_1) are dequantised to f32 here.
        q if q.is_block_quantized() => {
            return Ok(CandleTensor(Tensor::from_vec(view.to_f32_vec(), view.shape.as_slice(), device).zoo()?));
        }
        other => {
            return Err(Error::UnsupportedDType { backend: backend.to_string(), dtype: other, name: view.name.clone() })
        }
    };
    let raw = Tensor::from_raw_buffer(view.data.as_slice(), stored, &view.shape, device).zoo()?;
    let kept = if view.shape.len() >= 2 { keep.matrices } else { keep.vectors };
    let target = if kept { stored } else { CandleDType::F32 };
    Ok(CandleTensor(raw.to_dtype(target).zoo()?))
}

/// What [`weight`] does with `dtype`: f32 is kept; f16/bf16 are kept where `keep` keeps matrices
/// (what the matrix products read) and converted to f32 otherwise; ggml blocks are dequantised to
/// f32; int8 groups are refused.
pub(crate) fn support(dtype: DType, keep: Keep) -> Support {
    match dtype {
        DType::F32 => Support::Native,
        DType::F16 | DType::BF16 if keep.matrices => Support::Native,
        DType::F16 | DType::BF16 => Support::Converted,
        block if block.is_block_quantized() => Support::Converted,
        _ => Support::Unsupported,
    }
}

/// Uploads f32 host values under `shape`.
pub(crate) fn upload(values: &[f32], shape: &[usize], device: &Device) -> Result<CandleTensor> {
    if shape.iter().product::<usize>() != values.len() {
        return Err(shape_error("upload", format!("{} elements", values.len()), shape));
    }
    Ok(CandleTensor(Tensor::from_slice(values, shape, device).zoo()?))
}

/// Reads a tensor back as f32, row-major. 16-bit values cross as they are (half the bytes of
/// f32) and are widened on the host, exactly.
pub(crate) fn to_host(x: &CandleTensor) -> Result<Vec<f32>> {
    let flat = x.inner().flatten_all().zoo()?;
    match flat.dtype() {
        CandleDType::BF16 => Ok(flat.to_vec1::<half::bf16>().zoo()?.iter().map(|v| v.to_f32()).collect()),
        CandleDType::F16 => Ok(flat.to_vec1::<half::f16>().zoo()?.iter().map(|v| v.to_f32()).collect()),
        _ => flat.to_dtype(CandleDType::F32).zoo()?.to_vec1::<f32>().zoo(),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use zoo_core::{DType, Support, WeightView};

    use super::{support, weight, Keep};

    /// The candle dtype a weight stored as `dtype` would keep, if candle has it.
    fn stored(dtype: DType) -> Option<candle_core::DType> {
        match dtype {
            DType::F32 => Some(candle_core::DType::F32),
            DType::F16 => Some(candle_core::DType::F16),
            DType::BF16 => Some(candle_core::DType::BF16),
            _ => None,
        }
    }

    #[test]
    fn support_says_what_weight_does_with_each_dtype() {
        for (matrices, vectors) in [(false, false), (true, false), (true, true)] {
            let keep = Keep { matrices, vectors };
            for dtype in DType::ALL {
                let view = WeightView::zeros("w", dtype, vec![2, 256]).unwrap();
                let held = weight(&view, &Device::Cpu, keep, "candle").map(|t| t.inner().dtype());
                let expected = match held {
                    Err(_) => Support::Unsupported,
                    Ok(held) if Some(held) == stored(dtype) => Support::Native,
                    Ok(_) => Support::Converted,
                };
                assert_eq!(support(dtype, keep), expected, "{dtype}, {keep:?}");
            }
        }
    }

    #[test]
    fn vectors_stay_16_bit_only_when_asked() {
        let view = WeightView::zeros("b", DType::BF16, vec![8]).unwrap();
        for vectors in [false, true] {
            let held = weight(&view, &Device::Cpu, Keep { matrices: true, vectors }, "candle").unwrap();
            let want = if vectors { candle_core::DType::BF16 } else { candle_core::DType::F32 };
            assert_eq!(held.inner().dtype(), want);
        }
    }

    #[test]
    fn to_host_widens_16_bit_values_exactly() {
        // Values every one of the three types holds exactly.
        let values = [1.5f32, -0.00390625, 96.0];
        for dtype in [candle_core::DType::BF16, candle_core::DType::F16, candle_core::DType::F32] {
            let x = candle_core::Tensor::new(&values[..], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let read = super::to_host(&super::CandleTensor::new(x)).unwrap();
            assert_eq!(read, values, "{dtype:?}");
        }
    }
}
