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
//! (see [`tensor`]). Leave room for custom decode kernels: Burn's own matmul is far from the
//! memory-bandwidth limit on decode shapes.

mod attention;
mod registry;
mod rope;
pub mod tensor;

use burn::tensor::activation::{relu, silu, softmax};
use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{DType as BurnDType, Int, Tensor, TensorData};
use zoo_core::{
    AttentionSpec, Backend, DType, Error, KvSpec, Result, RopeSpec, SeqSpan, TensorShape, UnaryOp, WeightView,
};

pub use attention::BurnKv;
pub use tensor::BurnTensor;

/// zoo's backend over the Burn backend `BB`.
#[derive(Clone, Debug)]
pub struct Burn<BB: BurnBackend> {
    name: &'static str,
    device: BB::Device,
    dtype: BurnDType,
}

impl<BB: BurnBackend> Burn<BB> {
    /// A backend named `name` computing in `dtype` on `device`.
    pub fn new(name: &'static str, device: BB::Device, dtype: BurnDType) -> Self {
        Self { name, device, dtype }
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

impl<BB: BurnBackend> Backend for Burn<BB> {
    type Tensor = BurnTensor<BB>;
    type KvBuffer = BurnKv<BB>;

    fn name(&self) -> &str {
        self.name
    }

    fn weight(&self, view: &WeightView) -> Result<BurnTensor<BB>> {
        let layout = BurnTensor::<BB>::layout(&view.shape);
        let data = match view.dtype {
            DType::BF16 => TensorData::new(
                view.data.as_slice().chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]])).collect(),
                layout,
            ),
            DType::F16 => TensorData::new(
                view.data.as_slice().chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect(),
                layout,
            ),
            _ => TensorData::new(view.to_f32_vec(), layout),
        };
        BurnTensor::with_shape(Tensor::from_data(data, (&self.device, self.dtype)), view.shape.clone())
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
        let (vocab, _) = table.dims2("embedding")?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::TokenOutOfRange { id, vocab_size: vocab });
        }
        self.gather(table, ids.iter().map(|&i| i as i64).collect())
    }

    fn linear(&self, x: &BurnTensor<BB>, w: &BurnTensor<BB>, bias: Option<&BurnTensor<BB>>) -> Result<BurnTensor<BB>> {
        let (n, k) = x.dims2("linear")?;
        let (out, inp) = w.dims2("linear weight")?;
        if inp != k {
            return Err(Error::Shape { op: "linear", expected: format!("input with {inp} columns"), got: vec![n, k] });
        }
        let mut y = x.t.clone().matmul(w.t.clone().transpose()); // (n, out)
        if let Some(b) = bias {
            y = y + self.row_vector(b, out, "linear bias")?;
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
        let mean_sq = x.t.clone().powi_scalar(2).mean_dim(1);
        let mut y = x.t.clone() / mean_sq.add_scalar(eps).sqrt();
        if let Some(w) = w {
            y = y * self.row_vector(w, dim, "rms_norm weight")?;
        }
        self.like(x, y)
    }

    fn rope(&self, x: &BurnTensor<BB>, positions: &[usize], spec: &RopeSpec) -> Result<BurnTensor<BB>> {
        rope::rope(x, positions, spec)
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

    fn new_kv(&self, spec: &KvSpec) -> Result<BurnKv<BB>> {
        Ok(BurnKv::new(spec))
    }

    fn attention(
        &self,
        q: &BurnTensor<BB>,
        k: &BurnTensor<BB>,
        v: &BurnTensor<BB>,
        kv: &mut BurnKv<BB>,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<BurnTensor<BB>> {
        attention::attention(q, k, v, kv, spans, spec)
    }
}

impl<BB: BurnBackend> Burn<BB> {
    fn gather(&self, x: &BurnTensor<BB>, rows: Vec<i64>) -> Result<BurnTensor<BB>> {
        let count = rows.len();
        let index = Tensor::<BB, 1, Int>::from_data(TensorData::new(rows, [count]), &self.device);
        Ok(BurnTensor::matrix(x.t.clone().select(0, index)))
    }
}

/// Call from a binary to make sure this crate (and so its registrations) is linked.
pub fn link() {}
