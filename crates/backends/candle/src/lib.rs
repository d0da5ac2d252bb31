//! # zoo-backend-candle
//!
//! zoo on Hugging Face's [candle](https://github.com/huggingface/candle). Activations, norms,
//! softmax and the KV cache are f32 everywhere. On the CPU (`candle`) weights are converted to
//! f32 at load; on a GPU (`candle-cuda`, cargo feature `cuda`) weight matrices stay resident in
//! their stored bf16/f16 and matrix products run in that dtype through cuBLAS.
//!
//! Ops map onto candle's fused kernels where their numerics match zoo's reference backend
//! (candle-nn's `rms_norm`, `rope`, `softmax_last_dim`); LayerNorm is composed (see `norm.rs`).

mod attention;
mod elementwise;
mod error;
mod kv;
mod layout;
mod linear;
mod norm;
mod registry;
mod rope;
mod tensor;

use candle_core::Device;
use error::CandleResult;
use zoo_core::{AttentionSpec, Backend, DType, KvSpec, Result, RopeSpec, SeqSpan, Support, UnaryOp, WeightView};

pub use kv::KvBuffer;
pub use tensor::CandleTensor;

/// The candle backend on one device.
#[derive(Clone, Debug)]
pub struct Candle {
    device: Device,
    /// Keep f16/bf16 weight matrices in their stored dtype (GPU) instead of converting to f32.
    keep_half: bool,
    name: &'static str,
}

impl Candle {
    /// The CPU backend. `threads` sizes rayon's global pool, which candle's kernels use, the first
    /// time a backend is created (later values are ignored, since the pool already exists).
    pub fn cpu(threads: Option<usize>) -> Self {
        if let Some(n) = threads {
            // Err only means the pool was already built, which is fine.
            let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        }
        Self { device: Device::Cpu, keep_half: false, name: "candle" }
    }

    /// The backend on CUDA device `ordinal`, keeping f16/bf16 weights as stored.
    #[cfg(feature = "cuda")]
    pub fn cuda(ordinal: usize) -> Result<Self> {
        let device = Device::new_cuda(ordinal).map_err(|e| zoo_core::Error::Backend {
            backend: "candle-cuda".into(),
            message: format!("cannot open CUDA device {ordinal}: {}", first_line(&e)),
        })?;
        Ok(Self { device, keep_half: true, name: "candle-cuda" })
    }

    /// The candle device this backend computes on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl Backend for Candle {
    type Tensor = CandleTensor;
    type KvBuffer = KvBuffer;

    fn name(&self) -> &str {
        self.name
    }

    fn weight(&self, view: &WeightView) -> Result<CandleTensor> {
        tensor::weight(view, &self.device, self.keep_half, self.name)
    }

    fn supports(&self, dtype: DType) -> Support {
        tensor::support(dtype, self.keep_half)
    }

    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<CandleTensor> {
        tensor::upload(values, shape, &self.device)
    }

    fn to_host(&self, x: &CandleTensor) -> Result<Vec<f32>> {
        tensor::to_host(x)
    }

    fn synchronize(&self) -> Result<()> {
        self.device.synchronize().zoo()
    }

    fn embedding(&self, table: &CandleTensor, ids: &[u32]) -> Result<CandleTensor> {
        layout::embedding(table, ids)
    }

    fn linear(&self, x: &CandleTensor, w: &CandleTensor, bias: Option<&CandleTensor>) -> Result<CandleTensor> {
        linear::linear(x, w, bias)
    }

    fn add(&self, a: &CandleTensor, b: &CandleTensor) -> Result<CandleTensor> {
        elementwise::add(a, b)
    }

    fn mul(&self, a: &CandleTensor, b: &CandleTensor) -> Result<CandleTensor> {
        elementwise::mul(a, b)
    }

    fn unary(&self, x: &CandleTensor, op: UnaryOp) -> Result<CandleTensor> {
        elementwise::unary(x, op)
    }

    fn gated(&self, gate: &CandleTensor, up: &CandleTensor, op: UnaryOp) -> Result<CandleTensor> {
        elementwise::gated(gate, up, op)
    }

    fn layer_norm(
        &self,
        x: &CandleTensor,
        weight: &CandleTensor,
        bias: &CandleTensor,
        eps: f32,
    ) -> Result<CandleTensor> {
        norm::layer_norm(x, weight, bias, eps)
    }

    fn rms_norm(&self, x: &CandleTensor, weight: Option<&CandleTensor>, eps: f32) -> Result<CandleTensor> {
        norm::rms_norm(x, weight, eps)
    }

    fn rope(&self, x: &CandleTensor, positions: &[usize], spec: &RopeSpec) -> Result<CandleTensor> {
        rope::rope(x, positions, spec)
    }

    fn softmax(&self, x: &CandleTensor) -> Result<CandleTensor> {
        elementwise::softmax(x)
    }

    fn narrow(&self, x: &CandleTensor, dim: usize, start: usize, len: usize) -> Result<CandleTensor> {
        layout::narrow(x, dim, start, len)
    }

    fn reshape(&self, x: &CandleTensor, shape: &[usize]) -> Result<CandleTensor> {
        layout::reshape(x, shape)
    }

    fn gather_rows(&self, x: &CandleTensor, rows: &[usize]) -> Result<CandleTensor> {
        layout::gather_rows(x, rows)
    }

    fn new_kv(&self, spec: &KvSpec) -> Result<KvBuffer> {
        Ok(KvBuffer::new(spec, &self.device))
    }

    fn attention(
        &self,
        q: &CandleTensor,
        k: &CandleTensor,
        v: &CandleTensor,
        kv: &mut KvBuffer,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<CandleTensor> {
        kv.attend(q, k, v, spans, spec)
    }
}

/// Call from a binary to make sure this crate (and so its registrations) is linked.
pub fn link() {}

/// The first line of a candle error (the rest is a backtrace): zoo reports errors on one line.
pub(crate) fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
