//! # zoo-backend-burn
//!
//! Any [Burn](https://burn.dev) backend behind zoo's `Backend` trait. Registered as
//! - `burn-ndarray` (feature `ndarray`, default): Burn's CPU backend, f32 — what CI tests;
//! - `cuda`, `cuda-f16` and `cuda-f32` (feature `cuda`): burn-cuda (CubeCL) on an NVIDIA GPU,
//!   computing in bf16, f16 or f32 (whose matmuls CubeCL runs in TF32 on tensor cores), weights
//!   uploaded once and resident, KV cache on the device.
//!
//! Burn 0.21.0 is the newest release whose CUDA backend builds offline (0.22's cubecl-cuda
//! downloads an LLVM bundle in its build script).
//!
//! Ops are written with Burn's tensor API; every tensor is a rank-2 Burn tensor plus zoo's shape
//! (see [`tensor`]). Where the Burn backend provides zoo's fused [`kernels`] (CubeCL backends,
//! see [`cube`]), decode runs them instead: a GEMV at the weights' memory bandwidth, RMSNorm,
//! SwiGLU, RoPE from cached tables, the KV write and attention over the resident cache.

mod attention;
#[cfg(feature = "cuda")]
mod blas_lane;
#[cfg(feature = "cubecl")]
pub mod cube;
#[cfg(feature = "cuda")]
pub mod cuda_device;
#[cfg(feature = "cuda")]
mod cuda_graph;
#[cfg(all(feature = "cuda", feature = "autodiff"))]
pub mod cuda_train;
mod grid_dependency;
pub mod kernels;
pub mod params;
mod registry;
mod rope;
mod step;
pub mod tensor;
#[cfg(feature = "wgpu")]
pub mod wgpu_device;
#[cfg(feature = "wgpu")]
pub mod wgpu_upload;

use burn::tensor::activation::{relu, silu, softmax};
use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{DType as BurnDType, Int, Tensor, TensorData};
use zoo_core::{
    AttentionSpec, Backend, DType, Error, KvSpec, Qkv, Result, RopeSpec, SeqSpan, Step, StepInput, StepMemory, Support,
    TensorShape, UnaryOp, WeightView,
};

pub use attention::BurnKv;
pub use kernels::Kernels;
use kernels::RowNorm;
pub use params::Params;
use step::{BurnStep, RopeTables};
pub use tensor::BurnTensor;

/// zoo's backend over the Burn backend `BB`.
#[derive(Clone, Debug)]
pub struct Burn<BB: BurnBackend> {
    name: &'static str,
    device: BB::Device,
    dtype: BurnDType,
    rope_tables: RopeTables<BB>,
    hooks: Option<DeviceHooks<BB>>,
    startup_note: Option<String>,
    device_description: Option<String>,
    params: Option<Params<BB>>,
}

/// What a device can do beyond Burn's ops, for backends that have it (burn-cuda: see
/// [`cuda_device`]). Each returns `None` where it cannot, and zoo falls back to Burn.
#[derive(Debug)]
pub struct DeviceHooks<BB: BurnBackend> {
    /// Row-major bytes of a `[rows, cols]` matrix of the given element type to a resident
    /// tensor (instead of Burn's `from_data`), of that type or of one the device can store
    /// (burn-wgpu widens bf16 to f32); the caller casts it to the backend's type.
    pub upload: Uploader<BB>,
    /// A zeroed `[rows, cols]` tensor in an exact-size allocation of its own (instead of a
    /// slice of Burn's memory pool).
    pub zeros: fn([usize; 2], BurnDType, &Device<BB>) -> Resident<BB>,
    /// Bytes of device memory free now.
    pub free_bytes: fn(&Device<BB>) -> Option<u64>,
    /// `x · wᵀ` for rows past the GEMV's (prefill), through the device's own BLAS.
    pub matmul_nt: fn(&Tensor<BB, 2>, &Tensor<BB, 2>) -> Resident<BB>,
    /// Prefill attention's batched products, through the device's own BLAS.
    pub batched_matmul: BatchedMatmul<BB>,
    /// What the device has to tell the user ([`Backend::take_notes`]), taken.
    pub take_notes: fn() -> Vec<String>,
    /// One forward step ([`Backend::run_step`]): burn-cuda replays decode steps as CUDA graphs
    /// (see [`cuda_graph`](crate::cuda_graph)); others call the closure.
    pub run_step: StepRunner<BB>,
}

/// Runs one forward step (the closure computes it op by op), or replays a recording of one
/// kept in the step memory.
pub type StepRunner<BB> =
    fn(&Device<BB>, &mut StepMemory, &Step<'_>, &mut dyn FnMut() -> Result<BurnTensor<BB>>) -> Result<BurnTensor<BB>>;

/// [`DeviceHooks::run_step`] of devices that replay nothing.
pub fn run_directly<BB: BurnBackend>(
    _: &Device<BB>,
    _: &mut StepMemory,
    _: &Step<'_>,
    run: &mut dyn FnMut() -> Result<BurnTensor<BB>>,
) -> Result<BurnTensor<BB>> {
    run()
}

/// `alpha · a · bᵀ` (when the flag is set) or `alpha · a · b` over a batch of matrices, or
/// `None` to fall back to Burn's matmul.
pub type BatchedMatmul<BB> = fn(&Tensor<BB, 3>, &Tensor<BB, 3>, bool, f32) -> Option<Tensor<BB, 3>>;

/// The device a hook works on.
pub type Device<BB> = burn::tensor::Device<BB>;

/// Uploads row-major bytes of a `[rows, cols]` matrix of the given element type.
pub type Uploader<BB> = fn(&[u8], [usize; 2], BurnDType, &Device<BB>) -> Resident<BB>;

/// A hook's tensor, or `None` to fall back to Burn.
pub type Resident<BB> = Option<Tensor<BB, 2>>;

impl<BB: BurnBackend> Clone for DeviceHooks<BB> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<BB: BurnBackend> Copy for DeviceHooks<BB> {}

/// Device memory a full-capacity KV cache leaves free for activations, logits and Burn's pool.
const KV_HEADROOM_BYTES: u64 = 2 << 30;

impl<BB: Kernels> Burn<BB> {
    /// A backend named `name` computing in `dtype` on `device`.
    pub fn new(name: &'static str, device: BB::Device, dtype: BurnDType) -> Self {
        Self {
            name,
            device,
            dtype,
            rope_tables: RopeTables::default(),
            hooks: None,
            startup_note: None,
            device_description: None,
            params: None,
        }
    }

    /// The same backend, holding weights in `params` (see [`params`]): a model loaded through
    /// it is made of the store's tensors, which a trainer updates between loads.
    pub fn with_params(mut self, params: Params<BB>) -> Self {
        self.params = Some(params);
        self
    }

    /// The device tensors live on.
    pub fn device(&self) -> &BB::Device {
        &self.device
    }

    /// A weight from the parameter store: the stored tensor for a known name, otherwise the
    /// view made resident in f32, marked as requiring gradients and stored. The store keeps
    /// f32 master weights whatever the backend computes in; a backend computing in bf16 or f16
    /// (mixed-precision training) gets a cast of the master, which Burn's autodiff
    /// differentiates, so gradients and optimizer updates stay in f32.
    fn param(&self, params: &Params<BB>, view: &WeightView) -> Result<BurnTensor<BB>> {
        let layout = BurnTensor::<BB>::layout(&view.shape);
        let master = match params.get(&view.name) {
            Some(t) => {
                let [rows, cols] = t.dims();
                if rows * cols != view.numel() {
                    return Err(Error::Shape {
                        op: "parameter",
                        expected: format!("`{}` with {} elements", view.name, rows * cols),
                        got: view.shape.clone(),
                    });
                }
                if t.dims() == layout {
                    t
                } else {
                    t.reshape(layout)
                }
            }
            None => {
                let data = TensorData::new(view.to_f32_vec(), layout);
                let t = Tensor::from_data(data, (&self.device, BurnDType::F32)).require_grad();
                params.insert(view.name.clone(), t.clone());
                t
            }
        };
        let t = if self.dtype == BurnDType::F32 { master } else { master.cast(self.dtype) };
        BurnTensor::with_shape(t, view.shape.clone())
    }

    /// The same backend, reporting `note` as its [`Backend::startup_note`].
    pub fn with_startup_note(mut self, note: Option<String>) -> Self {
        self.startup_note = note;
        self
    }

    /// The same backend, reporting `description` as its [`Backend::device_description`].
    pub fn with_device_description(mut self, description: Option<String>) -> Self {
        self.device_description = description;
        self
    }

    /// The same backend, using the device's own uploads and allocations where it can.
    pub fn with_hooks(mut self, hooks: DeviceHooks<BB>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// One layer's cache at its full capacity, when the device says that leaves
    /// [`KV_HEADROOM_BYTES`] free (tried layer by layer, so a cache too big for the device
    /// gets as many full layers as fit); `None` means grow by doubling.
    fn full_kv(&self, spec: &KvSpec) -> Option<BurnKv<BB>> {
        let hooks = self.hooks?;
        let layout = [spec.slots * spec.n_kv_heads * spec.capacity, spec.head_dim];
        let bytes = 2 * (spec.values(spec.capacity) * self.dtype.size()) as u64;
        if bytes == 0 || bytes + KV_HEADROOM_BYTES > (hooks.free_bytes)(&self.device)? {
            return None;
        }
        let keys = (hooks.zeros)(layout, self.dtype, &self.device)?;
        let values = (hooks.zeros)(layout, self.dtype, &self.device)?;
        Some(BurnKv::full(spec, keys, values))
    }

    fn tensor(&self, values: Vec<f32>, shape: &[usize]) -> Result<BurnTensor<BB>> {
        let layout = BurnTensor::<BB>::layout(shape);
        let t = Tensor::from_data(TensorData::new(values, layout), (&self.device, self.dtype));
        BurnTensor::with_shape(t, shape.to_vec())
    }

    fn same_shape(&self, op: &'static str, a: &BurnTensor<BB>, b: &BurnTensor<BB>) -> Result<()> {
        if a.shape() != b.shape() {
            return Err(Error::Shape { op, expected: format!("shape {:?}", a.shape()), got: b.shape().to_vec() });
        }
        Ok(())
    }

    fn like(&self, x: &BurnTensor<BB>, t: Tensor<BB, 2>) -> Result<BurnTensor<BB>> {
        BurnTensor::with_shape(t, x.shape().to_vec())
    }

    fn row_vector(&self, p: &BurnTensor<BB>, len: usize, op: &'static str) -> Result<Tensor<BB, 2>> {
        if p.shape().iter().product::<usize>() != len {
            return Err(Error::Shape { op, expected: format!("{len} elements"), got: p.shape().to_vec() });
        }
        Ok(p.t.clone().reshape([1, len]))
    }
}

/// The Burn type of a float weight's stored bytes; `None` for quantised types, which `weight`
/// dequantises to f32 on the host.
/// An RMSNorm folded into the projections after it: its weight (if any) and eps.
type Norm<'a, BB> = Option<(Option<&'a BurnTensor<BB>>, f32)>;

impl<BB: BurnBackend + Kernels> Burn<BB> {
    /// `linears(norm(x))`: one fused kernel for decode rows where the backend has one (the norm
    /// folded in), otherwise the norm then one product per layer.
    fn normed_linears(
        &self,
        x: &BurnTensor<BB>,
        norm: Norm<'_, BB>,
        layers: &[(&BurnTensor<BB>, Option<&BurnTensor<BB>>)],
    ) -> Result<Vec<BurnTensor<BB>>> {
        let (_, k) = x.dims2("linears")?;
        let mut parts = Vec::with_capacity(layers.len());
        for (w, b) in layers {
            let (out, inp) = w.dims2("linear weight")?;
            if inp != k {
                return Err(Error::Shape {
                    op: "linears",
                    expected: format!("input with {inp} columns"),
                    got: x.shape().to_vec(),
                });
            }
            parts.push((&w.t, b.map(|b| self.row_vector(b, out, "linear bias")).transpose()?));
        }
        let norm_weight = self.norm_weight(norm, k)?;
        let row_norm = norm.map(|(_, eps)| RowNorm { weight: norm_weight.as_ref(), eps });
        let fused = match parts.as_slice() {
            [(w, b)] => BB::gemv(&x.t, w, b.as_ref(), row_norm.as_ref(), None).map(|y| vec![y]),
            _ => {
                let refs: Vec<_> = parts.iter().map(|(w, b)| (*w, b.as_ref())).collect();
                BB::gemv_many(&x.t, row_norm.as_ref(), &refs)
            }
        };
        if let Some(ys) = fused {
            return Ok(ys.into_iter().map(BurnTensor::matrix).collect());
        }
        let normed = self.apply_norm(x, norm)?;
        let x = normed.as_ref().unwrap_or(x);
        layers.iter().map(|(w, b)| self.linear(x, w, *b)).collect()
    }

    /// `gated_linear(norm(x))`, fused like [`Self::normed_linears`].
    fn normed_gated_linear(
        &self,
        x: &BurnTensor<BB>,
        norm: Norm<'_, BB>,
        gate: &BurnTensor<BB>,
        up: &BurnTensor<BB>,
        op: UnaryOp,
    ) -> Result<BurnTensor<BB>> {
        if op == UnaryOp::Silu && x.shape().len() == 2 && gate.shape() == up.shape() {
            let norm_weight = self.norm_weight(norm, x.shape()[1])?;
            let row_norm = norm.map(|(_, eps)| RowNorm { weight: norm_weight.as_ref(), eps });
            if let Some(y) = BB::gated_gemv(&x.t, row_norm.as_ref(), &gate.t, &up.t) {
                return Ok(BurnTensor::matrix(y));
            }
        }
        let normed = self.apply_norm(x, norm)?;
        let x = normed.as_ref().unwrap_or(x);
        let gate = self.linear(x, gate, None)?;
        let up = self.linear(x, up, None)?;
        self.gated(&gate, &up, op)
    }

    /// The norm's weight as a `[1, dim]` row, checked against `dim`.
    fn norm_weight(&self, norm: Norm<'_, BB>, dim: usize) -> Result<Option<Tensor<BB, 2>>> {
        norm.and_then(|(w, _)| w).map(|w| self.row_vector(w, dim, "rms_norm weight")).transpose()
    }

    /// `norm(x)` as its own op, or `None` when there is no norm.
    fn apply_norm(&self, x: &BurnTensor<BB>, norm: Norm<'_, BB>) -> Result<Option<BurnTensor<BB>>> {
        norm.map(|(weight, eps)| self.rms_norm(x, weight, eps)).transpose()
    }
}

fn stored_float(dtype: DType) -> Option<BurnDType> {
    match dtype {
        DType::BF16 => Some(BurnDType::BF16),
        DType::F16 => Some(BurnDType::F16),
        DType::F32 => Some(BurnDType::F32),
        _ => None,
    }
}

fn apply<BB: BurnBackend>(x: Tensor<BB, 2>, op: UnaryOp) -> Tensor<BB, 2> {
    match op {
        UnaryOp::GeluTanh => {
            const SQRT_2_OVER_PI: f32 = 0.797_884_6;
            let inner = (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715)).mul_scalar(SQRT_2_OVER_PI);
            x.mul(inner.tanh().add_scalar(1.0)).mul_scalar(0.5)
        }
        UnaryOp::Silu => silu(x),
        UnaryOp::ReluSquared => relu(x).powi_scalar(2),
        UnaryOp::Softcap(cap) => x.div_scalar(cap).tanh().mul_scalar(cap),
    }
}

impl<BB: Kernels> Backend for Burn<BB> {
    type Tensor = BurnTensor<BB>;
    type KvBuffer = BurnKv<BB>;

    fn name(&self) -> &str {
        self.name
    }

    fn weight(&self, view: &WeightView) -> Result<BurnTensor<BB>> {
        if let Some(params) = &self.params {
            return self.param(params, view);
        }
        let layout = BurnTensor::<BB>::layout(&view.shape);
        // Float weights travel as their bytes (no per-element conversion on the host); other
        // types are dequantised to f32 here first. Either goes through the device's own upload
        // where it has one (burn-cuda, burn-wgpu: several GB/s against Burn's ~0.3), and the
        // device casts it when the backend computes in another type.
        let (widened, dtype) = match stored_float(view.dtype) {
            Some(dtype) => (None, dtype),
            None => (Some(view.to_f32_vec()), BurnDType::F32),
        };
        let bytes: &[u8] = widened.as_deref().map_or(view.data.as_slice(), bytemuck::cast_slice);
        if let Some(t) = self.hooks.and_then(|hooks| (hooks.upload)(bytes, layout, dtype, &self.device)) {
            let t = if t.dtype() == self.dtype { t } else { t.cast(self.dtype) };
            return BurnTensor::with_shape(t, view.shape.clone());
        }
        let data = match (widened, dtype) {
            (Some(values), _) => TensorData::new(values, layout),
            (None, half @ (BurnDType::BF16 | BurnDType::F16)) => {
                TensorData::from_bytes_vec(view.data.as_slice().to_vec(), layout, half)
            }
            (None, _) => TensorData::new(view.to_f32_vec(), layout),
        };
        BurnTensor::with_shape(Tensor::from_data(data, (&self.device, self.dtype)), view.shape.clone())
    }

    /// Float weights of the type the backend computes in are kept; every other type is cast to
    /// it at load (on the device where the weights travel as bytes), quantised ones after
    /// dequantising on the host.
    fn supports(&self, dtype: DType) -> Support {
        match stored_float(dtype) {
            Some(stored) if stored == self.dtype => Support::Native,
            _ => Support::Converted,
        }
    }

    fn launches(&self) -> Option<u64> {
        BB::launches()
    }

    fn scoped(&self, rows: usize, f: &mut (dyn FnMut() + Send)) {
        BB::scoped(&self.device, rows, f);
    }

    fn take_notes(&self) -> Vec<String> {
        self.hooks.map(|hooks| (hooks.take_notes)()).unwrap_or_default()
    }

    fn run_step(
        &self,
        memory: &mut StepMemory,
        step: &Step<'_>,
        run: &mut dyn FnMut() -> Result<BurnTensor<BB>>,
    ) -> Result<BurnTensor<BB>> {
        let runner = self.hooks.map_or(run_directly as StepRunner<BB>, |hooks| hooks.run_step);
        runner(&self.device, memory, step, run)
    }

    fn synchronize(&self) -> Result<()> {
        BB::sync(&self.device).map_err(|e| Error::Backend { backend: self.name.into(), message: format!("{e:?}") })
    }

    fn argmax_rows(&self, logits: &BurnTensor<BB>) -> Result<Vec<u32>> {
        let picks = match &logits.picks {
            Some(picks) => Some(picks.to_vec()),
            None => BB::argmax_rows(&logits.t),
        };
        let Some(picks) = picks else {
            return zoo_core::sampler::greedy_rows_on_host(self, logits);
        };
        picks
            .into_iter()
            .map(|(id, value)| {
                if value.is_nan() || value == f32::INFINITY {
                    Err(Error::Sampling(format!("the largest logit is {value}")))
                } else if value == f32::NEG_INFINITY {
                    Err(Error::Sampling("every logit is -inf".into()))
                } else {
                    Ok(id)
                }
            })
            .collect()
    }

    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<BurnTensor<BB>> {
        self.tensor(values.to_vec(), shape)
    }

    fn to_host(&self, x: &BurnTensor<BB>) -> Result<Vec<f32>> {
        x.t.clone()
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::Backend { backend: self.name.into(), message: format!("{e:?}") })
    }

    fn embedding(&self, table: &BurnTensor<BB>, ids: &[u32]) -> Result<BurnTensor<BB>> {
        check_ids(table, ids)?;
        self.gather(table, ids.iter().map(|&i| i as i64).collect())
    }

    fn linear(&self, x: &BurnTensor<BB>, w: &BurnTensor<BB>, bias: Option<&BurnTensor<BB>>) -> Result<BurnTensor<BB>> {
        let (n, k) = x.dims2("linear")?;
        let (out, inp) = w.dims2("linear weight")?;
        if inp != k {
            return Err(Error::Shape { op: "linear", expected: format!("input with {inp} columns"), got: vec![n, k] });
        }
        let bias = bias.map(|b| self.row_vector(b, out, "linear bias")).transpose()?;
        if let Some(y) = BB::gemv(&x.t, &w.t, bias.as_ref(), None, None) {
            return Ok(BurnTensor::matrix(y));
        }
        let product = self.hooks.and_then(|hooks| (hooks.matmul_nt)(&x.t, &w.t));
        let mut y = product.unwrap_or_else(|| x.t.clone().matmul(w.t.clone().transpose())); // (n, out)
        if let Some(b) = bias {
            y = y + b;
        }
        Ok(BurnTensor::matrix(y))
    }

    fn add(&self, a: &BurnTensor<BB>, b: &BurnTensor<BB>) -> Result<BurnTensor<BB>> {
        self.same_shape("add", a, b)?;
        self.like(a, a.t.clone() + b.t.clone())
    }

    fn mul(&self, a: &BurnTensor<BB>, b: &BurnTensor<BB>) -> Result<BurnTensor<BB>> {
        self.same_shape("mul", a, b)?;
        self.like(a, a.t.clone() * b.t.clone())
    }

    fn unary(&self, x: &BurnTensor<BB>, op: UnaryOp) -> Result<BurnTensor<BB>> {
        self.like(x, apply(x.t.clone(), op))
    }

    fn gated(&self, gate: &BurnTensor<BB>, up: &BurnTensor<BB>, op: UnaryOp) -> Result<BurnTensor<BB>> {
        self.same_shape("gated", gate, up)?;
        if op == UnaryOp::Silu {
            if let Some(y) = BB::silu_mul(&gate.t, &up.t) {
                return self.like(gate, y);
            }
        }
        self.like(gate, apply(gate.t.clone(), op) * up.t.clone())
    }

    fn layer_norm(
        &self,
        x: &BurnTensor<BB>,
        w: &BurnTensor<BB>,
        b: &BurnTensor<BB>,
        eps: f32,
    ) -> Result<BurnTensor<BB>> {
        let dim = x.t.dims()[1];
        let (w, b) = (self.row_vector(w, dim, "layer_norm weight")?, self.row_vector(b, dim, "layer_norm bias")?);
        let centered = x.t.clone() - x.t.clone().mean_dim(1);
        let var = centered.clone().powi_scalar(2).mean_dim(1);
        self.like(x, centered / var.add_scalar(eps).sqrt() * w + b)
    }

    fn rms_norm(&self, x: &BurnTensor<BB>, w: Option<&BurnTensor<BB>>, eps: f32) -> Result<BurnTensor<BB>> {
        let dim = x.t.dims()[1];
        let row = w.map(|w| self.row_vector(w, dim, "rms_norm weight")).transpose()?;
        if let Some(y) = BB::rms_norm(&x.t, row.as_ref(), eps) {
            return self.like(x, y);
        }
        let mean_sq = x.t.clone().powi_scalar(2).mean_dim(1);
        let mut y = x.t.clone() / mean_sq.add_scalar(eps).sqrt();
        if let Some(row) = row {
            y = y * row;
        }
        self.like(x, y)
    }

    fn rope(&self, x: &BurnTensor<BB>, positions: &[usize], spec: &RopeSpec) -> Result<BurnTensor<BB>> {
        rope::rope(x, positions, spec)
    }

    fn prepare_step<'a>(&self, step: &'a Step<'a>) -> Result<StepInput<'a>> {
        let prepared = BurnStep::<BB>::new(step, &self.device);
        BB::step_prepared(&prepared.rows);
        Ok(StepInput { step, prepared: Some(Box::new(prepared)) })
    }

    fn embedding_step(&self, table: &BurnTensor<BB>, input: &StepInput<'_>) -> Result<BurnTensor<BB>> {
        let Some(step) = input.prepared::<BurnStep<BB>>() else {
            return self.embedding(table, input.step.tokens);
        };
        check_ids(table, input.step.tokens)?;
        let ids = &step.rows.tokens;
        let rows = BB::embed_rows(&table.t, ids).unwrap_or_else(|| table.t.clone().select(0, ids.clone()));
        Ok(BurnTensor::matrix(rows))
    }

    fn rope_step(&self, x: &BurnTensor<BB>, input: &StepInput<'_>, spec: &RopeSpec) -> Result<BurnTensor<BB>> {
        let Some(step) = input.prepared::<BurnStep<BB>>() else {
            return self.rope(x, &input.step.positions, spec);
        };
        rope::check(x, input.step.positions.len(), spec)?;
        let (cos, sin) = step.rope_rows(&self.rope_tables, spec, &self.device, x.t.dtype());
        if let Some(y) = BB::rope(&x.t, &cos, &sin, spec.head_dim) {
            return self.like(x, y);
        }
        rope::rotate(x, cos, sin, spec)
    }

    fn attention_step(
        &self,
        qkv: Qkv<'_, BurnTensor<BB>>,
        kv: &mut BurnKv<BB>,
        input: &StepInput<'_>,
        spec: &AttentionSpec,
    ) -> Result<BurnTensor<BB>> {
        let step = input.prepared::<BurnStep<BB>>();
        attention::attention(qkv, kv, &input.step.spans, spec, step)
    }

    fn rope_attention_step(
        &self,
        qkv: Qkv<'_, BurnTensor<BB>>,
        kv: &mut BurnKv<BB>,
        input: &StepInput<'_>,
        rope: &RopeSpec,
        spec: &AttentionSpec,
    ) -> Result<BurnTensor<BB>> {
        if let Some(step) = input.prepared::<BurnStep<BB>>() {
            if rope.head_dim == spec.head_dim && rope.head_dim % 2 == 0 {
                let dtype = qkv.q.t.dtype();
                let (cos, sin) = self.rope_tables.get(rope, step.rows.bound, &self.device, dtype);
                let rows = || step.rope_rows(&self.rope_tables, rope, &self.device, dtype);
                let spans = &input.step.spans;
                if let Some(y) = attention::rope_attention(qkv, kv, spans, spec, step, (&cos, &sin), rows)? {
                    return Ok(y);
                }
            }
        }
        let q = self.rope_step(qkv.q, input, rope)?;
        let k = self.rope_step(qkv.k, input, rope)?;
        self.attention_step(Qkv::new(&q, &k, qkv.v), kv, input, spec)
    }

    fn linears(
        &self,
        x: &BurnTensor<BB>,
        layers: &[(&BurnTensor<BB>, Option<&BurnTensor<BB>>)],
    ) -> Result<Vec<BurnTensor<BB>>> {
        self.normed_linears(x, None, layers)
    }

    fn rms_norm_linears(
        &self,
        x: &BurnTensor<BB>,
        weight: Option<&BurnTensor<BB>>,
        eps: f32,
        layers: &[(&BurnTensor<BB>, Option<&BurnTensor<BB>>)],
    ) -> Result<Vec<BurnTensor<BB>>> {
        self.normed_linears(x, Some((weight, eps)), layers)
    }

    fn gated_linear(
        &self,
        x: &BurnTensor<BB>,
        gate: &BurnTensor<BB>,
        up: &BurnTensor<BB>,
        op: UnaryOp,
    ) -> Result<BurnTensor<BB>> {
        self.normed_gated_linear(x, None, gate, up, op)
    }

    fn rms_norm_gated_linear(
        &self,
        x: &BurnTensor<BB>,
        weight: Option<&BurnTensor<BB>>,
        eps: f32,
        gate: &BurnTensor<BB>,
        up: &BurnTensor<BB>,
        op: UnaryOp,
    ) -> Result<BurnTensor<BB>> {
        self.normed_gated_linear(x, Some((weight, eps)), gate, up, op)
    }

    fn linear_add(
        &self,
        x: &BurnTensor<BB>,
        w: &BurnTensor<BB>,
        bias: Option<&BurnTensor<BB>>,
        residual: &BurnTensor<BB>,
    ) -> Result<BurnTensor<BB>> {
        let (n, k) = x.dims2("linear_add")?;
        let (out, inp) = w.dims2("linear weight")?;
        if inp == k && residual.shape() == [n, out] {
            let bias = bias.map(|b| self.row_vector(b, out, "linear bias")).transpose()?;
            if let Some(y) = BB::gemv(&x.t, &w.t, bias.as_ref(), None, Some(&residual.t)) {
                return Ok(BurnTensor::matrix(y));
            }
        }
        let y = self.linear(x, w, bias)?;
        self.add(residual, &y)
    }

    fn add_rms_norm(
        &self,
        x: &BurnTensor<BB>,
        y: &BurnTensor<BB>,
        weight: Option<&BurnTensor<BB>>,
        eps: f32,
    ) -> Result<(BurnTensor<BB>, BurnTensor<BB>)> {
        self.same_shape("add_rms_norm", x, y)?;
        let dim = x.t.dims()[1];
        let w = weight.map(|w| self.row_vector(w, dim, "rms_norm weight")).transpose()?;
        if let Some((sum, normed)) = BB::add_rms_norm(&x.t, &y.t, w.as_ref(), eps) {
            return Ok((self.like(x, sum)?, self.like(x, normed)?));
        }
        let sum = self.add(x, y)?;
        let normed = self.rms_norm(&sum, weight, eps)?;
        Ok((sum, normed))
    }

    fn softmax(&self, x: &BurnTensor<BB>) -> Result<BurnTensor<BB>> {
        self.like(x, softmax(x.t.clone(), 1))
    }

    fn narrow(&self, x: &BurnTensor<BB>, dim: usize, start: usize, len: usize) -> Result<BurnTensor<BB>> {
        let (rows, cols) = x.dims2("narrow")?;
        let size = [rows, cols].get(dim).copied();
        if size.is_none_or(|s| start + len > s) {
            return Err(Error::Shape {
                op: "narrow",
                expected: format!("dim {dim} to hold {start}..{}", start + len),
                got: vec![rows, cols],
            });
        }
        Ok(BurnTensor::matrix(x.t.clone().narrow(dim, start, len)))
    }

    fn reshape(&self, x: &BurnTensor<BB>, shape: &[usize]) -> Result<BurnTensor<BB>> {
        let layout = BurnTensor::<BB>::layout(shape);
        if layout[0] * layout[1] != x.shape().iter().product::<usize>() {
            return Err(Error::Shape {
                op: "reshape",
                expected: format!("{} elements", x.shape().iter().product::<usize>()),
                got: shape.to_vec(),
            });
        }
        BurnTensor::with_shape(x.t.clone().reshape(layout), shape.to_vec())
    }

    fn gather_rows(&self, x: &BurnTensor<BB>, rows: &[usize]) -> Result<BurnTensor<BB>> {
        let (n, _) = x.dims2("gather_rows")?;
        if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
            return Err(Error::Shape { op: "gather_rows", expected: format!("row indices below {n}"), got: vec![bad] });
        }
        self.gather(x, rows.iter().map(|&r| r as i64).collect())
    }

    fn startup_note(&self) -> Option<String> {
        self.startup_note.clone()
    }

    fn device_description(&self) -> Option<String> {
        self.device_description.clone()
    }

    fn new_kv(&self, spec: &KvSpec) -> Result<BurnKv<BB>> {
        let kv = self.full_kv(spec).unwrap_or_else(|| BurnKv::new(spec, attention::DOUBLING));
        Ok(kv.with_products(self.hooks.map(|hooks| hooks.batched_matmul)))
    }

    fn attention(
        &self,
        qkv: Qkv<'_, BurnTensor<BB>>,
        kv: &mut BurnKv<BB>,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<BurnTensor<BB>> {
        attention::attention(qkv, kv, spans, spec, None)
    }
}

impl<BB: Kernels> Burn<BB> {
    fn gather(&self, x: &BurnTensor<BB>, rows: Vec<i64>) -> Result<BurnTensor<BB>> {
        let count = rows.len();
        let index = Tensor::<BB, 1, Int>::from_data(TensorData::new(rows, [count]), &self.device);
        Ok(BurnTensor::matrix(x.t.clone().select(0, index)))
    }
}

/// An embedding lookup's `ids` checked against the rows of `table`.
fn check_ids<BB: BurnBackend>(table: &BurnTensor<BB>, ids: &[u32]) -> Result<()> {
    let (vocab, _) = table.dims2("embedding")?;
    match ids.iter().find(|&&id| id as usize >= vocab) {
        Some(&id) => Err(Error::TokenOutOfRange { id, vocab_size: vocab }),
        None => Ok(()),
    }
}

/// Where compiled GPU kernels of `kind` are kept: `kernels/<kind>/<build>` under zoo's cache
/// directory. CubeCL names a cached kernel by its type and settings, not its code, so a kernel
/// changed by a new build of zoo would otherwise load the old build's binary; `<build>` is
/// stamped when this crate's sources are compiled (`build.rs`), so each build of the kernels
/// compiles its own, and copies of one binary share theirs.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) fn kernel_cache(kind: &str) -> std::path::PathBuf {
    let build = concat!("build-", env!("ZOO_KERNELS_BUILD"));
    zoo_core::registry::cache_dir().join("kernels").join(kind).join(build)
}

/// Call from a binary to make sure this crate (and so its registrations) is linked.
pub fn link() {}
