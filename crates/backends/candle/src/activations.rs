//! The element type activations are computed in: a property of the backend, chosen when it is
//! constructed ([`crate::Candle::cpu_with`], [`crate::Candle::cuda`]).
//!
//! Every op computes in the dtype [`Activations::of`] gives for its activation input and casts its
//! other operands (a bias, a norm's weight, a second summand) to it; a matrix product runs in its
//! weight's dtype. With [`Activations::F32`] that is always f32; with [`Activations::Weights`] it
//! is whatever dtype the activations already have, which the embedding table's dtype sets at the
//! start of a forward step, so a bf16 checkpoint runs in bf16 from end to end without a cast.

use candle_core::{DType, Tensor};

/// Which element type a backend's activations take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activations {
    /// f32 everywhere: 16-bit weight matrices (kept as stored on a GPU) are multiplied in their
    /// dtype and the products cast back to f32; every other weight is f32 from load. The CPU
    /// backend's mode, held to the f32 references at 1e-4.
    #[default]
    F32,
    /// The dtype of the weights that produce them: a bf16 (f16) checkpoint decodes with bf16
    /// (f16) activations, KV cache and logits, its weights all kept as stored; an f32 one stays
    /// f32. Matrix products accumulate in f32 (cuBLAS; candle's CPU matmul widens bf16), as do
    /// candle's fused norm and softmax kernels on CUDA. `candle-cuda`'s mode.
    Weights,
}

impl Activations {
    /// The dtype an op computes in when `x` is its activation input.
    pub(crate) fn of(self, x: &Tensor) -> DType {
        match (self, x.dtype()) {
            (Activations::Weights, dtype @ (DType::BF16 | DType::F16)) => dtype,
            _ => DType::F32,
        }
    }

    /// Whether weight vectors (norm weights, biases) stay in their stored 16-bit dtype, as the
    /// activations they meet do, instead of becoming f32 at load.
    pub(crate) fn keeps_half_vectors(self) -> bool {
        self == Activations::Weights
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::Activations;

    #[test]
    fn f32_mode_always_computes_in_f32_and_weights_mode_follows_the_input() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let x = Tensor::zeros(4, dtype, &Device::Cpu).unwrap();
            assert_eq!(Activations::F32.of(&x), DType::F32, "{dtype:?}");
            assert_eq!(Activations::Weights.of(&x), dtype, "{dtype:?}");
        }
    }
}
