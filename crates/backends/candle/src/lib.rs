//! # zoo-backend-candle
//!
//! zoo on Hugging Face's [candle](https://github.com/huggingface/candle). The element type of
//! activations is a property of the backend ([`Activations`], chosen at construction):
//!
//! - on the CPU (`candle`), f32: weights are converted to f32 at load, and activations, norms,
//!   softmax and the KV cache are f32;
//! - on a GPU (`candle-cuda`, cargo feature `cuda`), the weights' dtype: a bf16/f16 checkpoint
//!   stays as stored and runs with bf16/f16 activations, KV cache and logits; matrix products go
//!   through cuBLAS with f32 accumulation and the fused norm and softmax kernels accumulate in
//!   f32. An f32 checkpoint runs in f32. [`Candle::cpu_with`] runs the 16-bit path on the CPU,
//!   so tests exercise it without a GPU.
//!
//! Ops map onto candle's fused kernels (candle-nn's `rms_norm`, `rope`, `softmax_last_dim`, and
//! `layer_norm` for 16-bit activations; see `norm.rs` for f32). RoPE tables are built once per
//! rotary spec; a forward step uploads its positions once ([`Backend::prepare_step`]) and selects
//! its RoPE rows and makes its masks once for all layers, so layers upload nothing. On CUDA each
//! slot's KV cache takes its full capacity at the first write and is written in place.

mod activations;
mod attention;
#[cfg(feature = "cuda")]
mod cuda_graph;
mod elementwise;
mod error;
// Steps run from fixed inputs are recorded only on CUDA; the CPU tests run them too.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod fixed;
mod kv;
mod layout;
mod linear;
mod norm;
mod registry;
mod rope;
mod step;
mod tensor;

use std::sync::{Arc, Mutex, PoisonError};

use attention::Context;
use candle_core::Device;
use error::CandleResult;
use fixed::FixedInputs;
use rope::RopeTables;
use step::CandleStep;
use tensor::Keep;
use zoo_core::{
    AttentionSpec, Backend, DType, KvSpec, Qkv, Result, RopeSpec, SeqSpan, Step, StepInput, StepMemory, Support,
    UnaryOp, WeightView,
};

pub use activations::Activations;
pub use kv::KvBuffer;
pub use tensor::CandleTensor;

thread_local! {
    /// The fixed inputs the step running on this thread reads (`fixed.rs`), set by
    /// [`Candle::run_from`] around a step that may be recorded: a step runs on the thread that
    /// calls it (candle's backend keeps [`Backend::scoped`]'s default), and steps of other
    /// threads and backends are left alone.
    static ARMED: std::cell::RefCell<Option<Arc<FixedInputs>>> = const { std::cell::RefCell::new(None) };
}

/// The candle backend on one device.
#[derive(Clone, Debug)]
pub struct Candle {
    device: Device,
    activations: Activations,
    /// Which 16-bit weights stay as stored.
    keep: Keep,
    /// RoPE `cos`/`sin` tables, built once per rotary spec and dtype.
    rope_tables: RopeTables,
    /// What to tell the user since the last [`Backend::take_notes`].
    notes: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Candle {
    /// The CPU backend with f32 activations. `threads` sizes rayon's global pool, which candle's
    /// kernels use, the first time a backend is created (later values are ignored, since the
    /// pool already exists).
    pub fn cpu(threads: Option<usize>) -> Self {
        Self::cpu_with(threads, Activations::F32)
    }

    /// The CPU backend with the given activations: [`Activations::Weights`] runs a 16-bit
    /// checkpoint as `candle-cuda` does, with its weights as stored and 16-bit activations.
    pub fn cpu_with(threads: Option<usize>, activations: Activations) -> Self {
        if let Some(n) = threads {
            // Err only means the pool was already built, which is fine.
            let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        }
        Self::on(Device::Cpu, activations, "candle")
    }

    /// The backend on CUDA device `ordinal`: 16-bit weights kept as stored, activations in the
    /// weights' dtype ([`Activations::Weights`]).
    #[cfg(feature = "cuda")]
    pub fn cuda(ordinal: usize) -> Result<Self> {
        Self::cuda_with(ordinal, Activations::Weights)
    }

    /// The backend on CUDA device `ordinal` with the given activations (16-bit weight matrices
    /// stay as stored either way).
    #[cfg(feature = "cuda")]
    pub fn cuda_with(ordinal: usize, activations: Activations) -> Result<Self> {
        let device = cuda_graph::open(ordinal).map_err(|e| zoo_core::Error::Backend {
            backend: "candle-cuda".into(),
            message: format!("cannot open CUDA device {ordinal}: {}", first_line(&e)),
        })?;
        Ok(Self::on(device, activations, "candle-cuda"))
    }

    /// The backend on `device`: 16-bit matrices stay as stored on a GPU or with 16-bit
    /// activations, 16-bit vectors with 16-bit activations.
    fn on(device: Device, activations: Activations, name: &'static str) -> Self {
        let vectors = activations.keeps_half_vectors();
        let keep = Keep { matrices: !device.is_cpu() || vectors, vectors };
        Self { device, activations, keep, rope_tables: RopeTables::default(), notes: Arc::default(), name }
    }

    /// The candle device this backend computes on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The element type this backend's activations take.
    pub fn activations(&self) -> Activations {
        self.activations
    }

    /// Runs `run` (one forward step) with its ids and positions read from `fixed`, which the
    /// caller has written them into.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn run_from(
        &self,
        fixed: &Arc<FixedInputs>,
        run: &mut dyn FnMut() -> Result<CandleTensor>,
    ) -> Result<CandleTensor> {
        let before = ARMED.replace(Some(fixed.clone()));
        let out = run();
        ARMED.set(before);
        out
    }

    /// Called by ops that take their inputs from the host (token ids, positions): a step run
    /// from fixed inputs that reaches one cannot be replayed, since a recording would freeze
    /// them.
    fn reads_host_inputs(&self) {
        ARMED.with_borrow(|armed| {
            if let Some(fixed) = armed {
                fixed.refuse();
            }
        });
    }

    /// Keeps `note` for the next [`Backend::take_notes`].
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn note(&self, note: String) {
        self.notes.lock().unwrap_or_else(PoisonError::into_inner).push(note);
    }

    /// What attention needs beyond its tensors, inside `input`'s step when it is one of ours.
    fn attention_context<'a>(&self, input: Option<&'a StepInput<'_>>) -> Context<'a> {
        let step = input.and_then(|i| i.prepared::<CandleStep>());
        Context { activations: self.activations, step, prescaled: false }
    }
}

impl Backend for Candle {
    type Tensor = CandleTensor;
    type KvBuffer = KvBuffer;

    fn name(&self) -> &str {
        self.name
    }

    fn weight(&self, view: &WeightView) -> Result<CandleTensor> {
        tensor::weight(view, &self.device, self.keep, self.name)
    }

    fn supports(&self, dtype: DType) -> Support {
        tensor::support(dtype, self.keep)
    }

    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<CandleTensor> {
        self.reads_host_inputs();
        tensor::upload(values, shape, &self.device)
    }

    fn to_host(&self, x: &CandleTensor) -> Result<Vec<f32>> {
        tensor::to_host(x)
    }

    fn synchronize(&self) -> Result<()> {
        self.device.synchronize().zoo()
    }

    fn embedding(&self, table: &CandleTensor, ids: &[u32]) -> Result<CandleTensor> {
        self.reads_host_inputs();
        layout::embedding(table, ids, self.activations)
    }

    fn linear(&self, x: &CandleTensor, w: &CandleTensor, bias: Option<&CandleTensor>) -> Result<CandleTensor> {
        linear::linear(x, w, bias, self.activations)
    }

    fn add(&self, a: &CandleTensor, b: &CandleTensor) -> Result<CandleTensor> {
        elementwise::add(a, b, self.activations)
    }

    fn mul(&self, a: &CandleTensor, b: &CandleTensor) -> Result<CandleTensor> {
        elementwise::mul(a, b, self.activations)
    }

    fn unary(&self, x: &CandleTensor, op: UnaryOp) -> Result<CandleTensor> {
        elementwise::unary(x, op, self.activations)
    }

    fn gated(&self, gate: &CandleTensor, up: &CandleTensor, op: UnaryOp) -> Result<CandleTensor> {
        elementwise::gated(gate, up, op, self.activations)
    }

    fn layer_norm(
        &self,
        x: &CandleTensor,
        weight: &CandleTensor,
        bias: &CandleTensor,
        eps: f32,
    ) -> Result<CandleTensor> {
        norm::layer_norm(x, weight, bias, eps, self.activations)
    }

    fn rms_norm(&self, x: &CandleTensor, weight: Option<&CandleTensor>, eps: f32) -> Result<CandleTensor> {
        norm::rms_norm(x, weight, eps, self.activations)
    }

    fn rope(&self, x: &CandleTensor, positions: &[usize], spec: &RopeSpec) -> Result<CandleTensor> {
        self.reads_host_inputs();
        rope::rope(x, positions, spec, &self.rope_tables, self.activations)
    }

    fn prepare_step<'a>(&self, step: &'a Step<'a>) -> Result<StepInput<'a>> {
        let prepared = match ARMED.with_borrow(Clone::clone) {
            Some(fixed) => CandleStep::fixed(fixed),
            None => CandleStep::new(step, &self.device)?,
        };
        Ok(StepInput { step, prepared: Some(Box::new(prepared)) })
    }

    /// From fixed inputs, the rows of the ids already on the device (the caller of
    /// [`Backend::run_step`] has checked them against the vocabulary).
    fn embedding_step(&self, table: &CandleTensor, input: &StepInput<'_>) -> Result<CandleTensor> {
        match input.prepared::<CandleStep>().and_then(CandleStep::fixed_inputs) {
            Some(fixed) => layout::embedding_of(table, fixed.ids(), input.step.tokens, self.activations),
            None => self.embedding(table, input.step.tokens),
        }
    }

    /// On CUDA, decode steps are recorded as CUDA graphs and replayed (`cuda_graph.rs`).
    fn run_step(
        &self,
        memory: &mut StepMemory,
        step: &Step<'_>,
        run: &mut dyn FnMut() -> Result<CandleTensor>,
    ) -> Result<CandleTensor> {
        #[cfg(feature = "cuda")]
        if self.device.is_cuda() {
            return cuda_graph::run_step(self, memory, step, run);
        }
        #[cfg(not(feature = "cuda"))]
        let _ = (memory, step);
        run()
    }

    fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn rope_step(&self, x: &CandleTensor, input: &StepInput<'_>, spec: &RopeSpec) -> Result<CandleTensor> {
        match input.prepared::<CandleStep>() {
            Some(step) => rope::rope_step(x, (input.step, step), spec, &self.rope_tables, self.activations, None),
            None => self.rope(x, &input.step.positions, spec),
        }
    }

    fn attention_step(
        &self,
        qkv: Qkv<'_, CandleTensor>,
        kv: &mut KvBuffer,
        input: &StepInput<'_>,
        spec: &AttentionSpec,
    ) -> Result<CandleTensor> {
        kv.attend(qkv, &input.step.spans, spec, self.attention_context(Some(input)))
    }

    /// Inside a prepared step, attention's scale is folded into the queries' RoPE rows (made
    /// once per step), which saves a kernel per layer.
    fn rope_attention_step(
        &self,
        Qkv { q, k, v }: Qkv<'_, CandleTensor>,
        kv: &mut KvBuffer,
        input: &StepInput<'_>,
        rope: &RopeSpec,
        spec: &AttentionSpec,
    ) -> Result<CandleTensor> {
        let Some(step) = input.prepared::<CandleStep>() else {
            let (q, k) = (self.rope_step(q, input, rope)?, self.rope_step(k, input, rope)?);
            return self.attention_step(Qkv::new(&q, &k, v), kv, input, spec);
        };
        let (tables, act) = (&self.rope_tables, self.activations);
        let q = rope::rope_step(q, (input.step, step), rope, tables, act, Some(spec.scale))?;
        let k = rope::rope_step(k, (input.step, step), rope, tables, act, None)?;
        let cx = Context { prescaled: true, ..self.attention_context(Some(input)) };
        kv.attend(Qkv::new(&q, &k, v), &input.step.spans, spec, cx)
    }

    fn softmax(&self, x: &CandleTensor) -> Result<CandleTensor> {
        elementwise::softmax(x, self.activations)
    }

    fn narrow(&self, x: &CandleTensor, dim: usize, start: usize, len: usize) -> Result<CandleTensor> {
        layout::narrow(x, dim, start, len)
    }

    fn reshape(&self, x: &CandleTensor, shape: &[usize]) -> Result<CandleTensor> {
        layout::reshape(x, shape)
    }

    fn gather_rows(&self, x: &CandleTensor, rows: &[usize]) -> Result<CandleTensor> {
        layout::gather_rows(x, rows, self.activations)
    }

    fn new_kv(&self, spec: &KvSpec) -> Result<KvBuffer> {
        Ok(KvBuffer::new(spec, &self.device))
    }

    fn attention(
        &self,
        qkv: Qkv<'_, CandleTensor>,
        kv: &mut KvBuffer,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<CandleTensor> {
        self.reads_host_inputs();
        kv.attend(qkv, spans, spec, self.attention_context(None))
    }
}

/// Call from a binary to make sure this crate (and so its registrations) is linked.
pub fn link() {}

/// The first line of a candle error (the rest is a backtrace): zoo reports errors on one line.
pub(crate) fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
