//! The candle backend's tensor, and moving values in and out of it: checkpoint weights (kept in
//! their stored dtype on a GPU, converted to f32 on the CPU), f32 uploads and f32 read-back.

use candle_core::{DType as CandleDType, Device, Tensor};
use zoo_core::{DType, Error, Result, Support, TensorShape, WeightView};

use crate::error::{shape_error, CandleResult};

/// Activations are always f32; only weights may be stored narrower.
pub(crate) const ACTIVATION: CandleDType = CandleDType::F32;

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

    /// The values as f32 (a no-op cast for activations).
    pub(crate) fn f32(&self) -> Result<Tensor> {
        self.0.to_dtype(ACTIVATION).zoo()
    }
}

impl TensorShape for CandleTensor {
    fn shape(&self) -> &[usize] {
        self.0.dims()
    }
}

/// Makes a checkpoint weight resident on `device`. With `keep_half`, matrices stay in their
/// stored f16/bf16 (vectors, being small and used by f32 ops, become f32); otherwise everything
/// becomes f32, exactly for f16 and bf16. ggml blocks are dequantised to f32.
pub(crate) fn weight(view: &WeightView, device: &Device, keep_half: bool, backend: &str) -> Result<CandleTensor> {
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
    let target = if keep_half && view.shape.len() >= 2 { stored } else { ACTIVATION };
    Ok(CandleTensor(raw.to_dtype(target).zoo()?))
}

/// What [`weight`] does with `dtype`: f32 is kept; f16/bf16 are kept with `keep_half` (matrices,
/// which is what the matrix products read) and converted to f32 without; ggml blocks are
/// dequantised to f32; int8 groups are refused.
pub(crate) fn support(dtype: DType, keep_half: bool) -> Support {
    match dtype {
        DType::F32 => Support::Native,
        DType::F16 | DType::BF16 if keep_half => Support::Native,
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

/// Reads a tensor back as f32, row-major.
pub(crate) fn to_host(x: &CandleTensor) -> Result<Vec<f32>> {
    x.f32()?.flatten_all().zoo()?.to_vec1::<f32>().zoo()
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use zoo_core::{DType, Support, WeightView};

    use super::{support, weight};

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
        for keep_half in [false, true] {
            for dtype in DType::ALL {
                let view = WeightView::zeros("w", dtype, vec![2, 256]).unwrap();
                let held = weight(&view, &Device::Cpu, keep_half, "candle").map(|t| t.inner().dtype());
                let expected = match held {
                    Err(_) => Support::Unsupported,
                    Ok(held) if Some(held) == stored(dtype) => Support::Native,
                    Ok(_) => Support::Converted,
                };
                assert_eq!(support(dtype, keep_half), expected, "{dtype}, keep_half {keep_half}");
            }
        }
    }
}
