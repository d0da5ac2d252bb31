//! # zoo-backend-ndarray
//!
//! zoo's own CPU backend. Computes in f32 on ndarray, with rayon spreading matrix products and
//! attention heads over all cores; the matrix products of long inputs (prefill) run on zoo's
//! own AVX-512 GEMM (`sgemm`), or matrixmultiply's on CPUs without AVX-512. f32 weights that
//! are aligned in the checkpoint's memory map are used in place; f16/bf16 matrices stay 16-bit,
//! int8 weights stay int8 and ggml blocks (`Q8_0`, `Q4_0`, `Q4_1`) stay blocks, widened row by
//! row (group by group, block by block) inside `linear` and `embedding`. The kernels use
//! AVX-512 or AVX2 where the CPU has them ([`isa`]; `ZOO_CPU_KERNELS` caps the choice).
//!
//! Registered as `ndarray`, the default backend on CPU.

mod attend_row;
mod attention;
mod block_dot;
mod elementwise;
mod half_dot;
pub mod isa;
mod layout;
mod matmul;
mod matmul_blocks;
mod matmul_half;
mod matmul_int8;
mod norm;
mod rope;
mod sgemm;
mod tensor;
mod vexp;

use zoo_core::registry::{BackendEntry, BackendOptions};
use zoo_core::{
    AttentionSpec, Backend, DType, DynBackend, KvSpec, Qkv, Result, RopeSpec, SeqSpan, Support, UnaryOp, WeightView,
};

pub use attention::KvBuffer;
pub use tensor::{Blocks, Float16, Int8, NdTensor};

/// The ndarray CPU backend.
#[derive(Clone, Debug, Default)]
pub struct NdArray;

impl NdArray {
    /// The backend on rayon's global thread pool; `threads` sizes that pool the first time a
    /// backend is created (later values are ignored, since the pool already exists).
    pub fn new(threads: Option<usize>) -> Self {
        if let Some(n) = threads {
            // Err only means the pool was already built, which is fine.
            let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        }
        Self
    }
}

/// f32 weights at least this large are read in place from the file's mapping; smaller ones
/// (norms, biases) are copied, so that reading them never maps the 2 MiB page around them
/// (see [`zoo_core::Bytes::release_huge_pages_around`]).
const MAPPED_MIN_BYTES: usize = 2 << 20;

impl Backend for NdArray {
    type Tensor = NdTensor;
    type KvBuffer = KvBuffer;

    fn name(&self) -> &str {
        "ndarray"
    }

    fn weight(&self, view: &WeightView) -> Result<NdTensor> {
        if let (DType::I8, Some(scales)) = (view.dtype, &view.scales) {
            return NdTensor::quantized(view.data.clone(), scales, view.shape.clone());
        }
        if view.dtype.is_block_quantized() {
            return NdTensor::blocks(view.dtype, view.data.clone(), view.shape.clone());
        }
        // 16-bit matrices stay 16-bit (half the bytes a decode step reads); vectors (norms,
        // biases), read whole by elementwise ops, become f32.
        if matches!(view.dtype, DType::F16 | DType::BF16) && view.shape.len() >= 2 {
            return NdTensor::float16(view.dtype, view.data.clone(), view.shape.clone());
        }
        if view.dtype == DType::F32 && view.data.len() >= MAPPED_MIN_BYTES {
            if let Some(t) = NdTensor::mapped(view.data.clone(), view.shape.clone()) {
                return Ok(t);
            }
        }
        let t = NdTensor::new(view.to_f32_vec(), view.shape.clone())?;
        // A copied weight's file pages are not read again; a small one (a norm) would otherwise
        // keep the 2 MiB page of the file around it resident.
        view.data.release_huge_pages_around();
        Ok(t)
    }

    /// f32, 16-bit floats, int8 groups and ggml blocks are kept as stored (as `weight` does;
    /// 16-bit vectors become f32).
    fn supports(&self, dtype: DType) -> Support {
        match dtype {
            DType::F32 | DType::F16 | DType::BF16 | DType::I8 => Support::Native,
            block if block.is_block_quantized() => Support::Native,
            _ => Support::Converted,
        }
    }

    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<NdTensor> {
        NdTensor::new(values.to_vec(), shape.to_vec())
    }

    fn to_host(&self, x: &NdTensor) -> Result<Vec<f32>> {
        Ok(x.values().to_vec())
    }

    /// Runs the step on a thread of rayon's pool: parallel ops then split from a worker, and
    /// with one thread they run inline instead of waking the pool for every op.
    fn scoped(&self, _rows: usize, f: &mut (dyn FnMut() + Send)) {
        // From outside the pool, `rayon::scope` runs its closure on a worker and waits for it.
        rayon::scope(|_| f())
    }

    /// Greedy picks read from the logits in place (the default copies them first).
    fn argmax_rows(&self, logits: &NdTensor) -> Result<Vec<u32>> {
        let vocab = logits.shape_vec().last().copied().unwrap_or(0);
        zoo_core::sampler::greedy_rows(logits.values(), vocab)
    }

    fn embedding(&self, table: &NdTensor, ids: &[u32]) -> Result<NdTensor> {
        layout::embedding(table, ids)
    }

    fn linear(&self, x: &NdTensor, w: &NdTensor, bias: Option<&NdTensor>) -> Result<NdTensor> {
        matmul::linear(x, w, bias)
    }

    fn linears(&self, x: &NdTensor, layers: &[(&NdTensor, Option<&NdTensor>)]) -> Result<Vec<NdTensor>> {
        matmul::linears(x, layers)
    }

    fn gated_linear(&self, x: &NdTensor, gate: &NdTensor, up: &NdTensor, op: UnaryOp) -> Result<NdTensor> {
        let (gate, up) = matmul::linear_pair(x, gate, up)?;
        elementwise::gated(&gate, &up, op)
    }

    fn add(&self, a: &NdTensor, b: &NdTensor) -> Result<NdTensor> {
        elementwise::add(a, b)
    }

    fn mul(&self, a: &NdTensor, b: &NdTensor) -> Result<NdTensor> {
        elementwise::mul(a, b)
    }

    fn unary(&self, x: &NdTensor, op: UnaryOp) -> Result<NdTensor> {
        elementwise::unary(x, op)
    }

    fn gated(&self, gate: &NdTensor, up: &NdTensor, op: UnaryOp) -> Result<NdTensor> {
        elementwise::gated(gate, up, op)
    }

    fn layer_norm(&self, x: &NdTensor, weight: &NdTensor, bias: &NdTensor, eps: f32) -> Result<NdTensor> {
        norm::layer_norm(x, weight, bias, eps)
    }

    fn rms_norm(&self, x: &NdTensor, weight: Option<&NdTensor>, eps: f32) -> Result<NdTensor> {
        norm::rms_norm(x, weight, eps)
    }

    fn rope(&self, x: &NdTensor, positions: &[usize], spec: &RopeSpec) -> Result<NdTensor> {
        rope::rope(x, positions, spec)
    }

    fn softmax(&self, x: &NdTensor) -> Result<NdTensor> {
        elementwise::softmax(x)
    }

    fn narrow(&self, x: &NdTensor, dim: usize, start: usize, len: usize) -> Result<NdTensor> {
        layout::narrow(x, dim, start, len)
    }

    fn reshape(&self, x: &NdTensor, shape: &[usize]) -> Result<NdTensor> {
        layout::reshape(x, shape)
    }

    fn gather_rows(&self, x: &NdTensor, rows: &[usize]) -> Result<NdTensor> {
        layout::gather_rows(x, rows)
    }

    fn new_kv(&self, spec: &KvSpec) -> Result<KvBuffer> {
        Ok(KvBuffer::new(spec))
    }

    fn attention(
        &self,
        Qkv { q, k, v }: Qkv<'_, NdTensor>,
        kv: &mut KvBuffer,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<NdTensor> {
        kv.attend(q, k, v, spans, spec)
    }
}

fn create(options: &BackendOptions) -> Result<DynBackend> {
    Ok(DynBackend::new(NdArray::new(options.threads)))
}

zoo_core::inventory::submit! {
    BackendEntry::usable("ndarray", "zoo's CPU backend: f32 on ndarray + matrixmultiply, all cores", create, 10)
}

/// Call from a binary to make sure this crate (and so its registration) is linked.
pub fn link() {}

#[cfg(test)]
mod tests {
    use zoo_core::{Backend, DType, Support, WeightView};

    use crate::NdArray;

    #[test]
    fn supports_says_which_dtypes_weight_keeps_as_stored() {
        for dtype in DType::ALL {
            let t = NdArray.weight(&WeightView::zeros("w", dtype, vec![2, 256]).unwrap()).unwrap();
            let kept = match dtype {
                DType::F32 => true,
                DType::F16 | DType::BF16 => t.float16_data().is_some(),
                DType::I8 => t.int8().is_some(),
                _ => t.quant_blocks().is_some(),
            };
            assert_eq!(NdArray.supports(dtype) == Support::Native, kept, "{dtype}");
        }
    }
}
